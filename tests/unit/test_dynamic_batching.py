"""The dynamic batcher on its own: who runs with whom, in what order, how long anyone waits, whose error."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from visionloop.config import SettingsError, load_settings
from visionloop.core import batch_policy
from visionloop.inference.batching import BatchPolicy, BatchRunError, DynamicBatcher


class Recorder:
    """A forward that doubles numbers, records each call, fails on negative items, and can be held."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()

    def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        self.entered.set()
        self.hold.wait(5)
        if any(i < 0 for i in items):
            raise ValueError(f"bad item among {items}")
        return [2 * i for i in items]


def queued(batcher: DynamicBatcher[int, int], n: int) -> None:
    deadline = time.monotonic() + 5
    while len(batcher._queue) < n:  # test-only peek: the callers are waiting behind the held forward
        assert time.monotonic() < deadline, "callers never queued"
        time.sleep(0.001)


def held_then_queued(items: Sequence[int], policy: BatchPolicy,
                     sizes: Sequence[int] = ()) -> tuple[Recorder, list[Future[int]]]:
    """Item 0 runs and is held while the others queue, in order; then everything is released.
    Each item counts 1 unless ``sizes`` says otherwise; returns the finished calls."""
    run = Recorder()
    batcher = DynamicBatcher(run, policy)
    sizes = sizes or [1] * len(items)
    run.hold.clear()
    with ThreadPoolExecutor(len(items)) as pool:
        futures = [pool.submit(batcher.submit, items[0], sizes[0])]
        assert run.entered.wait(5)
        for n, (item, size) in enumerate(zip(items[1:], sizes[1:]), start=1):
            futures.append(pool.submit(batcher.submit, item, size))
            queued(batcher, n)
        run.hold.set()
    return run, futures


def results(futures: list[Future[int]]) -> list[int]:
    return [f.result(5) for f in futures]


def test_a_lone_request_runs_at_once_without_the_wait() -> None:
    run = Recorder()
    batcher = DynamicBatcher(run, BatchPolicy(max_size=8, wait_s=1.0))
    start = time.monotonic()
    assert batcher.submit(3) == 6
    assert time.monotonic() - start < 0.5
    assert run.calls == [[3]]


def test_requests_queued_behind_a_forward_share_the_next_in_arrival_order() -> None:
    run, futures = held_then_queued([1, 2, 3, 4], BatchPolicy(max_size=8, wait_s=0.0))
    assert run.calls == [[1], [2, 3, 4]]
    assert results(futures) == [2, 4, 6, 8]


def test_a_forward_takes_at_most_max_size_and_the_rest_follow_in_order() -> None:
    run, futures = held_then_queued([1, 2, 3, 4, 5, 6], BatchPolicy(max_size=3, wait_s=0.0))
    assert run.calls == [[1], [2, 3, 4], [5, 6]]
    assert results(futures) == [2, 4, 6, 8, 10, 12]


def test_a_queued_request_waits_for_others_only_within_the_window() -> None:
    run = Recorder()
    batcher = DynamicBatcher(run, BatchPolicy(max_size=8, wait_s=0.3))
    run.hold.clear()
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(batcher.submit, 1)
        assert run.entered.wait(5)
        second = pool.submit(batcher.submit, 2)
        queued(batcher, 1)
        run.hold.set()
        first.result(5)
        late = pool.submit(batcher.submit, 3)  # arrives while 2 waits out its window: joins it
        start = time.monotonic()
        assert (second.result(5), late.result(5)) == (4, 6)
        assert time.monotonic() - start < 1.0
    assert run.calls == [[1], [2, 3]]


def test_a_full_batch_does_not_wait_out_the_window() -> None:
    start = time.monotonic()
    run, _ = held_then_queued([1, 2, 3], BatchPolicy(max_size=2, wait_s=5.0))
    assert time.monotonic() - start < 5.0
    assert run.calls == [[1], [2, 3]]  # 2 and 3 filled their forward; 1 had found the batcher idle


def test_one_failing_request_fails_only_itself() -> None:
    run, futures = held_then_queued([1, 2, -1, 4], BatchPolicy(max_size=8, wait_s=0.0))
    assert results([futures[i] for i in (0, 1, 3)]) == [2, 4, 8]
    with pytest.raises(ValueError, match="bad item among \\[-1\\]"):
        futures[2].result(5)
    assert run.calls == [[1], [2, -1, 4], [2], [-1], [4]]  # the shared forward failed: each ran alone


def test_a_forward_returning_the_wrong_count_is_an_error_for_its_callers() -> None:
    batcher: DynamicBatcher[int, int] = DynamicBatcher(lambda items: [], BatchPolicy(max_size=4, wait_s=0.0))
    with pytest.raises(BatchRunError, match="0 results for 1 request"):
        batcher.submit(1)
    assert not batcher._busy  # the batcher is free again for the next caller


def test_max_size_one_turns_batching_off_and_large_requests_run_directly() -> None:
    run = Recorder()
    assert DynamicBatcher(run, BatchPolicy(max_size=1, wait_s=1.0)).submit(5) == 10
    assert DynamicBatcher(run, BatchPolicy(max_size=4, wait_s=1.0)).submit(7, size=4) == 14
    assert run.calls == [[5], [7]]


def test_sizes_count_images_not_requests() -> None:
    run, futures = held_then_queued([1, 2, 3, 4], BatchPolicy(max_size=4, wait_s=0.0), sizes=[1, 3, 2, 1])
    assert results(futures) == [2, 4, 6, 8]
    assert run.calls == [[1], [2], [3, 4]]  # 3 + 2 images exceed 4: the second request waits its turn


def test_many_threads_all_finish_with_their_own_results_and_bounded_batches() -> None:
    run = Recorder()
    batcher = DynamicBatcher(run, BatchPolicy(max_size=5, wait_s=0.001))
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(batcher.submit, range(400), timeout=30))
    assert answers == [2 * i for i in range(400)]
    assert sorted(i for call in run.calls for i in call) == list(range(400))  # each ran exactly once
    assert max(len(call) for call in run.calls) <= 5
    assert not batcher._queue and not batcher._busy


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="max_size"):
        BatchPolicy(max_size=0)
    with pytest.raises(ValueError, match="wait_s"):
        BatchPolicy(wait_s=float("nan"))


def test_the_settings_make_the_servers_policy_and_refuse_nonsense(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": tmp_path, "dynamic_batch_max": "1", "dynamic_batch_wait_ms": "5"}, environ={})
    assert batch_policy(settings) == BatchPolicy(max_size=1, wait_s=0.005)
    assert not batch_policy(settings).enabled
    assert batch_policy(load_settings({"data_dir": tmp_path}, environ={})) == BatchPolicy()
    with pytest.raises(SettingsError, match="VISIONLOOP_DYNAMIC_BATCH_MAX must be positive"):
        load_settings({"data_dir": tmp_path, "dynamic_batch_max": 0}, environ={})
    with pytest.raises(SettingsError, match="VISIONLOOP_DYNAMIC_BATCH_WAIT_MS must be 0 or more"):
        load_settings({"data_dir": tmp_path, "dynamic_batch_wait_ms": -1}, environ={})
