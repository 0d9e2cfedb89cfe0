"""The background training worker: one thread, a queue of versions, and a periodic check.

It resumes versions a crash left queued or training, trains versions requested through the API,
and queues a new version when enough feedback has arrived since the last one
(``VISIONLOOP_RETRAIN_AFTER_EVENTS`` events: concept or region feedback on a model, search clicks
for the embedding model's ranking), checking every ``VISIONLOOP_RETRAIN_CHECK_SECONDS``.
"""

from __future__ import annotations

import logging
import queue
import threading

from visionloop.services.training.service import LearningService
from visionloop.store.db import exclusive

log = logging.getLogger("visionloop.learning")


class TrainingWorker:
    def __init__(self, learning: LearningService, *, retrain_after_events: int, check_seconds: float) -> None:
        self.learning = learning
        self.retrain_after_events = retrain_after_events
        self.check_seconds = check_seconds
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="training-worker", daemon=True)

    def start(self) -> None:
        self.learning.submit = self._queue.put
        for version_id in self.learning.unfinished():
            self._queue.put(version_id)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout=30)
        self.learning.submit = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                version_id = self._queue.get(timeout=self.check_seconds)
            except queue.Empty:
                self._check()
                continue
            if version_id is None:
                break
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
