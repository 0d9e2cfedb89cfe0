"""Group commit: writes that arrive together share one transaction, each caller still waits for its own.

A durable commit costs a disk flush and, on SQLite, the one write lock: when many requests each
commit one small row, they queue for the lock and the flush rather than do work. Here the first
caller to find nobody writing becomes the *leader*: it takes every item queued so far (its own
first) and writes them with one ``write`` call, in one transaction; callers arriving meanwhile
queue up and wait. When the leader's batch is committed it hands the lead to the oldest waiting
caller, or steps down. Nobody returns before the transaction holding their item has committed,
so "committed before the answer" holds exactly as with one transaction per request.

If a batch fails, every item of it is written again alone, so that an error reaches only the
caller whose item caused it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class _Slot(Generic[T, R]):
    __slots__ = ("item", "result", "error", "done", "wake")

    def __init__(self, item: T) -> None:
        self.item = item
        self.result: R | None = None
        self.error: BaseException | None = None
        self.done = False
        self.wake = threading.Event()  # set when done, or when handed the lead

    def outcome(self) -> R:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class GroupCommit(Generic[T, R]):
    """``submit(item)`` returns ``write([..., item, ...])``'s result for ``item`` once committed.

    ``write`` runs in one caller's thread at a time, takes a batch (oldest first) and returns one
    result (never None) per item, in order; it must commit before returning.
    """

    def __init__(self, write: Callable[[Sequence[T]], Sequence[R]], *, max_batch: int = 256) -> None:
        self._write = write
        self._max_batch = max_batch
        self._mutex = threading.Lock()
        self._queue: list[_Slot[T, R]] = []
        self._leading = False

    def submit(self, item: T) -> R:
        slot: _Slot[T, R] = _Slot(item)
        with self._mutex:
            self._queue.append(slot)
            lead = not self._leading
            self._leading = True
        if not lead:
            slot.wake.wait()
            if slot.done:
                return slot.outcome()
        try:  # leading: our slot is the oldest queued one, so it is in the batch taken now
            with self._mutex:
                batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
            self._run(batch)
        finally:
            with self._mutex:
                if self._queue:
                    self._queue[0].wake.set()  # the lead passes on; _leading stays True
                else:
                    self._leading = False
        return slot.outcome()

    def _run(self, batch: list[_Slot[T, R]]) -> None:
        try:
            try:
                results = list(self._write([s.item for s in batch]))
                if len(results) != len(batch):
                    raise RuntimeError(f"group commit: {len(results)} results for {len(batch)} items")
                for s, r in zip(batch, results):
                    s.result = r
            except Exception as exc:
                if len(batch) == 1:
                    batch[0].error = exc
                else:
                    for s in batch:  # alone, each item meets only its own error
                        try:
                            s.result = self._write([s.item])[0]
                        except Exception as own:
                            s.error = own
        finally:  # whatever happened, nobody waits forever
            for s in batch:
                if s.result is None and s.error is None:
                    s.error = RuntimeError("group commit: the batch was interrupted before this item was written")
                s.done = True
                s.wake.set()
