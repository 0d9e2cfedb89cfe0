"""The server's alarm check: a thread of its own, apart from the training worker, so that a long
training run never delays an alarm (nor an alarm check a training run)."""

from __future__ import annotations

import logging
import threading

from visionloop.services.monitoring.alarms import AlarmService
from visionloop.store.db import exclusive

log = logging.getLogger("visionloop.alarms")


class AlarmLoop:
    """Every ``check_seconds``, check every app (one process at a time on a shared database)."""

    def __init__(self, alarms: AlarmService, check_seconds: float) -> None:
        self.alarms = alarms
        self.check_seconds = check_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="alarm-check", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.check_seconds):
            try:
                with exclusive(self.alarms.db.engine, "visionloop:alarm-check", wait=False) as mine:
                    if mine:
                        self.alarms.check_all()
            except Exception:
                log.exception("alarm check failed")
