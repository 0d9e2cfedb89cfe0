"""The background training worker: one thread, a fair queue of versions, and a periodic check.

It resumes versions a crash left queued or training, trains versions requested through the API,
and queues a new version when enough feedback has arrived since the last one
(``VISIONLOOP_RETRAIN_AFTER_EVENTS`` events: concept or region feedback on a model, search clicks
for the embedding model's ranking), checking every ``VISIONLOOP_RETRAIN_CHECK_SECONDS`` whether or
not the queue is busy.

Apps take turns (:class:`FairQueue`): however many jobs one app queues, another app's job starts
once the job running now ends. An app holds at most one queued job per model: a later request
joins it (see ``LearningService.request``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from visionloop.services.training.service import LearningService
from visionloop.store.db import exclusive

log = logging.getLogger("visionloop.learning")


class FairQueue:
    """Versions to train, one line per app; the app served longest ago goes next (round-robin, counting
    the job that is running: an app that just had its turn waits behind every other app with work)."""

    def __init__(self) -> None:
        self._lines: dict[str, deque[str]] = {}
        self._served: dict[str, int] = {}  # app -> the turn it was last served in
        self._turn = 0
        self._ready = threading.Condition()
        self._closed = False

    def put(self, app_id: str, version_id: str) -> None:
        with self._ready:
            self._lines.setdefault(app_id, deque()).append(version_id)
            self._ready.notify()

    def get(self, timeout: float) -> str | None:
        """The next app's next version; None when closed or when ``timeout`` passes with nothing queued."""
        with self._ready:
            if not self._lines and not self._closed:
                self._ready.wait(timeout)
            if self._closed or not self._lines:
                return None
            app_id = min(self._lines, key=lambda app: self._served.get(app, -1))  # ties: the first to queue
            line = self._lines[app_id]
            version_id = line.popleft()
            if not line:
                del self._lines[app_id]
            self._turn += 1
            self._served[app_id] = self._turn
            return version_id

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()


class TrainingWorker:
    def __init__(self, learning: LearningService, *, retrain_after_events: int, check_seconds: float) -> None:
        self.learning = learning
        self.retrain_after_events = retrain_after_events
        self.check_seconds = check_seconds
        self._queue = FairQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="training-worker", daemon=True)

    def start(self) -> None:
        self.learning.submit = self._queue.put
        for app_id, version_id in self.learning.unfinished():
            self._queue.put(app_id, version_id)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.close()
        self._thread.join(timeout=30)
        self.learning.submit = None

    def _loop(self) -> None:
        checked = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - checked >= self.check_seconds:  # busy or not: a full queue must not starve it
                self._check()
                checked = time.monotonic()
            version_id = self._queue.get(timeout=max(0.0, checked + self.check_seconds - time.monotonic()))
            if version_id is None:
                continue
            try:
                self.learning.run(version_id)
            except Exception:
                log.exception("training worker: version %s", version_id)

    def _check(self) -> None:
        if self.retrain_after_events <= 0:
            return
        try:  # one process at a time on a shared PostgreSQL: the others then see its queued versions
            with exclusive(self.learning.db.engine, "visionloop:retrain-check", wait=False) as mine:
                for app_id, model_id in self.learning.due(self.retrain_after_events) if mine else ():
                    log.info("retraining %s for app %s: enough new feedback", model_id, app_id)
                    self.learning.request(app_id, model_id)
        except Exception:
            log.exception("training worker: checking for due retraining failed")
