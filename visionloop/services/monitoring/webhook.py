"""Tell an operator's URL when alarms fire or resolve: a signed JSON POST, retried with backoff.

The URL is reached through :class:`~visionloop.services.fetch.ImageFetcher`'s checks (no private
or loopback address unless ``fetch_allow_hosts`` allows it, the checked address pinned against DNS
rebinding). The body is signed with HMAC-SHA256 under ``alarm_webhook_secret``, so the receiver can
tell it came from this server: ``X-Visionloop-Signature: sha256=<hex of the body's HMAC>``.

The alarm check hands each batch to an :class:`Outbox`, whose own thread delivers it: a slow or
dead URL, retried for tens of seconds, never holds up the check (nor its lock across processes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from visionloop import errors
from visionloop.services.fetch import ImageFetcher
from visionloop.store.tables import utcnow

log = logging.getLogger("visionloop.alarms")

SIGNATURE_HEADER = "X-Visionloop-Signature"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Webhook:
    """Sends each batch of changed alarms in one POST; ``attempts`` tries, waiting ``backoff``
    seconds, then twice that, and so on, after each failure (a refusal, an error, or not a 2xx)."""

    def __init__(self, fetcher: ImageFetcher, url: str, secret: str, *, attempts: int = 4, backoff: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.fetcher = fetcher
        self.url = url
        self.secret = secret
        self.attempts = attempts
        self.backoff = backoff
        self.sleep = sleep

    def __call__(self, alarms: list[dict[str, Any]]) -> bool:
        """True once the URL accepted the alarms; False (logged) when every attempt failed."""
        body = json.dumps({"sent_at": utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "alarms": alarms},
                          separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "visionloop-alarms/1"}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                code = self.fetcher.post(self.url, body, headers)
            except errors.ApiError as exc:
                log.warning("alarm webhook attempt %d failed: %s", attempt + 1, exc)
                continue
            if 200 <= code < 300:
                return True
            log.warning("alarm webhook attempt %d answered HTTP %d", attempt + 1, code)
        log.error("alarm webhook: %d alarms not delivered after %d attempts", len(alarms), self.attempts)
        return False


class Outbox:
    """Delivers batches of alarms through ``send`` on a thread of its own, in order. At most
    ``capacity`` batches wait; more are dropped (logged) rather than block the caller."""

    def __init__(self, send: Callable[[list[dict[str, Any]]], bool], capacity: int = 100) -> None:
        self.send = send
        self._queue: queue.Queue[list[dict[str, Any]] | None] = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._deliver, name="alarm-webhook", daemon=True)
        self._thread.start()

    def __call__(self, alarms: list[dict[str, Any]]) -> None:
        try:
            self._queue.put_nowait(alarms)
        except queue.Full:
            log.error("alarm webhook: %d alarms dropped, %d batches already waiting", len(alarms),
                      self._queue.maxsize)

    def close(self, timeout: float = 30.0) -> None:
        """Deliver what waits (for up to ``timeout`` seconds, twice over when the outbox is full),
        then stop; what is still undelivered then is left to the daemon thread."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.error("alarm webhook: closing with %d batches undelivered", self._queue.qsize())
            return
        self._thread.join(timeout)

    def _deliver(self) -> None:
        while (alarms := self._queue.get()) is not None:
            try:
                self.send(alarms)
            except Exception:  # a bug in delivery must not stop the deliveries after it
                log.exception("alarm webhook: delivery failed")
