"""A per-process cache of answers that may be a moment old: API keys and model views.

Every request authenticates its key and resolves its model; both rarely change, and reading them
costs more than the rest of a feedback request. A change made through this process clears the
cache at once; a change made by another process (the CLI, a second server on one PostgreSQL)
is seen within ``ttl`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

TTL_SECONDS = 1.0
MAX_ENTRIES = 10_000


class ShortCache(Generic[V]):
    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, V]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def peek(self, key: Hashable) -> V | None:
        """The cached value if younger than ``ttl``, else None."""
        hit = self._entries.get(key)
        return hit[1] if hit is not None and self._clock() - hit[0] < self.ttl else None

    def get(self, key: Hashable, load: Callable[[], V]) -> V:
        """The cached value if younger than ``ttl``, else ``load()`` (errors are not cached)."""
        hit = self._entries.get(key)
        now = self._clock()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        generation = self._generation
        value = load()
        with self._lock:
            if generation == self._generation:  # not cleared while loading: the value is current
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
                self._entries[key] = (now, value)
        return value

    def clear(self) -> None:
        """Forget everything, also values being loaded right now (they may predate the change)."""
        with self._lock:
            self._generation += 1
            self._entries.clear()
