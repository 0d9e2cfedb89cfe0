"""In-memory token buckets: a steady rate with bursts, per API key and per app.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second; each request
takes one. A request passes only if both its key's bucket and its app's bucket (``app_factor``
times larger: several keys of one app together) have a token; otherwise it is refused with
:class:`~visionloop.errors.Throttled` (11005, HTTP 429) and takes nothing. Memory: one bucket per
key and per app seen; state is per process and starts full (a restart forgives).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable

from visionloop import errors


@dataclasses.dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate: float, *, burst_seconds: float = 10.0, app_factor: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, what: str = "requests") -> None:
        """``rate`` requests per second per key (0 disables); bursts of ``burst_seconds`` worth."""
        if rate < 0:
            raise ValueError("rate must be >= 0")
        self.rate = float(rate)
        self.burst = max(1.0, rate * burst_seconds)
        self.app_factor = app_factor
        self.clock = clock
        self.what = what
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def _refill(self, key: tuple[str, str], rate: float, burst: float, now: float) -> _Bucket:
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(burst, now)
        else:
            b.tokens = min(burst, b.tokens + (now - b.updated) * rate)
            b.updated = now
        return b

    def check(self, app_id: str, key_id: str) -> None:
        """Take one token from the key's and the app's bucket, or refuse (taking none)."""
        if not self.enabled:
            return
        with self._lock:
            now = self.clock()
            key = self._refill(("key", key_id), self.rate, self.burst, now)
            app = self._refill(("app", app_id), self.rate * self.app_factor, self.burst * self.app_factor, now)
            for bucket, who, rate in ((key, "this API key", self.rate), (app, "this app", self.rate * self.app_factor)):
                if bucket.tokens < 1.0:
                    wait = (1.0 - bucket.tokens) / rate
                    raise errors.Throttled(f"too many {self.what} from {who} (at most {rate:g} per second, bursts of "
                                           f"{self.burst if bucket is key else self.burst * self.app_factor:g}); "
                                           f"retry in {wait:.2f} s")
            key.tokens -= 1.0
            app.tokens -= 1.0
