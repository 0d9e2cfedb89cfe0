"""Group commit: concurrent submissions share write calls, each caller gets its own result or error."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from visionloop.store.group_commit import GroupCommit


class Recorder:
    """A write function that remembers its batches and can be made slow or failing."""

    def __init__(self, delay: float = 0.0, poison: frozenset[int] = frozenset()) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.poison = poison
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def __call__(self, items: Sequence[int]) -> list[int]:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay)
            bad = [i for i in items if i in self.poison]
            if bad:
                raise ValueError(f"poisoned {bad[0]}")
            self.batches.append(list(items))
            return [i * 10 for i in items]
        finally:
            with self._lock:
                self.active -= 1


def submit_all(gc: GroupCommit[int, int], items: range) -> dict[int, int | Exception]:
    out: dict[int, int | Exception] = {}
    start = threading.Barrier(len(items))

    def one(i: int) -> None:
        start.wait()
        try:
            out[i] = gc.submit(i)
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a submitter is still waiting"
    return out


def test_alone_a_submission_is_written_at_once_in_its_own_batch() -> None:
    write = Recorder()
    gc: GroupCommit[int, int] = GroupCommit(write)
    assert gc.submit(3) == 30
    assert gc.submit(4) == 40
    assert write.batches == [[3], [4]]


def test_concurrent_submissions_share_batches_and_each_gets_its_own_result() -> None:
    write = Recorder(delay=0.02)
    gc: GroupCommit[int, int] = GroupCommit(write)
    out = submit_all(gc, range(40))
    assert out == {i: i * 10 for i in range(40)}
    written = sorted(i for b in write.batches for i in b)
    assert written == list(range(40))                      # each item exactly once
    assert len(write.batches) < 40                         # and some shared a write
    assert write.max_active == 1                           # never two writes at once


def test_max_batch_bounds_a_write() -> None:
    write = Recorder(delay=0.02)
    gc: GroupCommit[int, int] = GroupCommit(write, max_batch=3)
    out = submit_all(gc, range(20))
    assert out == {i: i * 10 for i in range(20)}
    assert max(len(b) for b in write.batches) <= 3


def test_a_failing_item_fails_only_its_own_submitter() -> None:
    write = Recorder(delay=0.02, poison=frozenset({7}))
    gc: GroupCommit[int, int] = GroupCommit(write)
    out = submit_all(gc, range(16))
    assert isinstance(out[7], ValueError) and "poisoned 7" in str(out[7])
    assert {i: v for i, v in out.items() if i != 7} == {i: i * 10 for i in range(16) if i != 7}
    assert 7 not in {i for b in write.batches for i in b}


def test_a_write_returning_the_wrong_number_of_results_is_an_error_not_a_mixup() -> None:
    sizes: list[int] = []

    def first_result_only(items: Sequence[int]) -> list[int]:
        sizes.append(len(items))
        time.sleep(0.02)  # let submissions pile up into batches
        return [i * 10 for i in items][:1]

    out = submit_all(GroupCommit(first_result_only), range(12))
    assert max(sizes) > 1                                  # batches of several did form, and failed ...
    assert out == {i: i * 10 for i in range(12)}           # ... then each item was written alone


def test_after_an_error_the_next_submission_still_leads() -> None:
    gc: GroupCommit[int, int] = GroupCommit(Recorder(poison=frozenset({1})))
    with pytest.raises(ValueError):
        gc.submit(1)
    assert gc.submit(2) == 20
