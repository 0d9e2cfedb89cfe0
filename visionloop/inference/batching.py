"""Dynamic batching: concurrent callers of one network share its forward passes.

Why: a forward of several images pays the per-call costs once, where the network gains from batches
(more cores, wider vector units) it costs less per image, and one forward at a time serving callers
in arrival order keeps the tail latency of many concurrent clients down, where dozens of forwards
would share the cores (docs/serving.md has the measurements). Triton's dynamic batcher is the
model, without a thread of its own:

- a caller that finds the network idle and nobody queued runs at once (a lone request pays no wait);
- callers that arrive while a forward runs queue; when it ends, the oldest queued caller leads the
  next forward with everything queued behind it, up to ``max_size`` items, in arrival order (so no
  caller starves); it waits for more only until the oldest of them has waited ``wait_s``;
- each caller gets its own results, or its own exception: if a shared forward fails, each of its
  requests runs again alone, so one bad request fails only itself;
- a request of ``max_size`` items or more has nothing to gain and runs directly, outside the queue.

Pure (no model, no numpy): ``run`` takes the requests of one forward and returns one result per
request; the caller of :meth:`DynamicBatcher.submit` joins and splits its arrays.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclasses.dataclass(frozen=True)
class BatchPolicy:
    """``max_size`` items per shared forward (1 turns batching off); ``wait_s``: the longest a
    queued request waits for others to join it. A cap below the number of concurrent callers lets
    one forward run while the callers of the one before finish their requests (a single forward
    of everyone would leave the network idle meanwhile), and bounds how long one forward takes."""

    max_size: int = 4
    wait_s: float = 0.002

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {self.max_size}")
        if not self.wait_s >= 0:
            raise ValueError(f"wait_s must be 0 or more, got {self.wait_s}")

    @property
    def enabled(self) -> bool:
        return self.max_size > 1


class BatchRunError(RuntimeError):
    """The forward returned a number of results other than the number of requests given."""


@dataclasses.dataclass(eq=False)
class _Request(Generic[T, R]):
    item: T
    size: int
    arrived: float
    done: bool = False
    result: R | None = None
    error: BaseException | None = None
    has_result: bool = False
    # Set when done or promoted: each caller waits on its own event, so that an arrival or the end
    # of a forward wakes one thread, not every queued one (with dozens queued that cost CPU per image).
    wake: threading.Event = dataclasses.field(default_factory=threading.Event)

    @property
    def answered(self) -> bool:
        return self.error is not None or self.has_result


class DynamicBatcher(Generic[T, R]):
    """Gathers concurrent :meth:`submit` calls into shared calls of ``run``; thread-safe."""

    def __init__(self, run: Callable[[list[T]], Sequence[R]], policy: BatchPolicy,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._run = run
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._arrival = threading.Condition(self._lock)  # waited on by a leader gathering its batch only
        self._queue: deque[_Request[T, R]] = deque()
        self._busy = False  # a shared forward is running or being gathered

    def submit(self, item: T, size: int = 1) -> R:
        """``run([item, ...])``'s result for this item, computed alone or together with others."""
        if not self.policy.enabled or size >= self.policy.max_size:
            return self._alone(item)
        req: _Request[T, R] = _Request(item, size, self._clock())
        with self._lock:
            self._queue.append(req)
            queued = self._busy
            if queued:
                self._arrival.notify()  # a leader gathering may want this one
            else:
                self._busy = True
                batch = self._take()
        if queued:
            req.wake.wait()
            if req.done:
                return self._outcome(req)
            with self._lock:  # promoted: the oldest queued request leads the next forward
                self._gather()
                batch = self._take()
        try:
            self._execute(batch)
        finally:  # even if interrupted: the callers of this batch and the queue behind it go on
            self._hand_over(batch)
        return self._outcome(req)

    def _alone(self, item: T) -> R:
        results = self._run([item])
        if len(results) != 1:
            raise BatchRunError(f"the forward returned {len(results)} results for 1 request")
        return results[0]

    def _gather(self) -> None:
        """Wait (holding the lock between waits) for the batch to fill or its oldest to time out."""
        deadline = self._queue[0].arrived + self.policy.wait_s
        while sum(r.size for r in self._queue) < self.policy.max_size:
            left = deadline - self._clock()
            if left <= 0:
                return
            self._arrival.wait(left)

    def _take(self) -> list[_Request[T, R]]:
        """The oldest queued requests that fit in one forward (always at least one)."""
        batch = [self._queue.popleft()]
        total = batch[0].size
        while self._queue and total + self._queue[0].size <= self.policy.max_size:
            total += self._queue[0].size
            batch.append(self._queue.popleft())
        return batch

    def _execute(self, batch: list[_Request[T, R]]) -> None:
        """Run the batch outside the lock; on failure run each request alone for its own outcome."""
        try:
            results = list(self._run([r.item for r in batch]))
            if len(results) != len(batch):
                raise BatchRunError(f"the forward returned {len(results)} results for {len(batch)} requests")
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
            else:
                for r in batch:
                    self._execute([r])
            return
        for r, result in zip(batch, results):
            r.result, r.has_result = result, True

    def _hand_over(self, batch: list[_Request[T, R]]) -> None:
        """Wake the batch's callers; the oldest request still queued leads the next forward."""
        with self._lock:
            for r in batch:
                if not r.answered:
                    r.error = BatchRunError("the shared forward was interrupted before this request ran")
                r.done = True
                r.wake.set()
            if self._queue:
                self._queue[0].wake.set()  # woken but not done: it leads
            else:
                self._busy = False

    @staticmethod
    def _outcome(req: _Request[T, R]) -> R:
        if req.error is not None:
            raise req.error
        return req.result  # type: ignore[return-value]
