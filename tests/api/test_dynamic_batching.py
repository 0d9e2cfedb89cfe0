"""Concurrent predicts through HTTP share backbone forwards and the commit of their outputs, and each
gets what it would have got alone: its own results, its own errors, nothing acknowledged unstored."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio.to_thread
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.helpers import Api, b64, photo
from visionloop.config import SettingsError, load_settings
from visionloop.core import VisionLoop
from visionloop.http.app import create_app
from visionloop.inference.runtime import ModelRuntime
from visionloop.store.tables import Output

GENERAL = "aaa03c23b3724a16a56b629203edc62c"
EMBED = "bbb5f41425b8468d9b7a554ff10f8581"
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
BROKEN = b"\xff\xd8\xff\xe0 not really a JPEG"


class ForwardLog:
    """Records the size of every backbone forward; the first one waits until ``gather`` more callers
    queued behind it, so that the test does not depend on the machine's timing to see a shared forward."""

    def __init__(self, runtime: ModelRuntime, gather: int) -> None:
        self.runtime, self.gather = runtime, gather
        self.sizes: list[int] = []
        self._logits = runtime.backbone.logits
        self._first = threading.Event()

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self._first.is_set():
            self._first.set()
            deadline = time.monotonic() + 10
            while len(self.runtime._batcher._queue) < self.gather and time.monotonic() < deadline:
                time.sleep(0.005)
        self.sizes.append(len(batch))
        return self._logits(batch)


@pytest.fixture
def forwards(runtime: ModelRuntime, monkeypatch: pytest.MonkeyPatch) -> Iterator[ForwardLog]:
    assert runtime.batching.enabled
    log = ForwardLog(runtime, gather=len(PHOTOS) - 1)
    monkeypatch.setattr(runtime.backbone, "logits", log)
    yield log


def post(api: Api, model: str, *images: bytes) -> Any:
    return api.post(f"/models/{model}/outputs",
                    {"inputs": [{"data": {"image": {"base64": b64(img)}}} for img in images]})


def vector(output: dict) -> np.ndarray:
    return np.array(output["data"]["embeddings"][0]["vector"], np.float32)


def test_concurrent_predicts_share_forwards_and_equal_predicts_alone(api: Api, forwards: ForwardLog) -> None:
    images = [photo(name) for name in PHOTOS]
    forwards.gather = 0  # alone, one after another
    alone = [post(api, EMBED, img).json()["outputs"][0] for img in images]
    alone_general = [post(api, GENERAL, img).json()["outputs"][0] for img in images]
    assert forwards.sizes == [1] * 2 * len(images)

    forwards.sizes.clear()
    forwards._first.clear()
    forwards.gather = len(images) - 1
    jobs = [(EMBED, img) for img in images] + [(GENERAL, img) for img in images]
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = [r.json()["outputs"][0] for r in pool.map(lambda job: post(api, *job), jobs)]
    assert max(forwards.sizes) > 1 and len(forwards.sizes) < len(jobs), forwards.sizes
    assert sum(forwards.sizes) == len(jobs)

    for one, shared in zip(alone, together[:len(images)]):
        np.testing.assert_allclose(vector(shared), vector(one), atol=1e-5)
    for one, shared in zip(alone_general, together[len(images):]):
        assert [c["id"] for c in shared["data"]["concepts"][:5]] == [c["id"] for c in one["data"]["concepts"][:5]]
        np.testing.assert_allclose([c["value"] for c in shared["data"]["concepts"][:5]],
                                   [c["value"] for c in one["data"]["concepts"][:5]], atol=1e-5)


def test_a_broken_image_fails_only_its_own_item_among_concurrent_requests(api: Api, forwards: ForwardLog) -> None:
    bodies = [(photo("chelsea"),), (photo("coffee"), BROKEN), (BROKEN,), (photo("rocket"),)]
    forwards.gather = 2  # the three requests with a good image meet in the forwards
    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda imgs: post(api, GENERAL, *imgs), bodies))
    codes = [r.json()["status"]["code"] for r in responses]
    assert (codes[0], codes[1], codes[3]) == (10000, 10010, 10000), [r.text[:300] for r in responses]
    assert responses[2].status_code == 400 and codes[2] not in (10000, 10010)  # its only image was broken
    mixed = responses[1].json()["outputs"]
    assert mixed[0]["status"]["code"] == 10000 and mixed[0]["data"]["concepts"]
    assert mixed[1]["status"]["code"] != 10000
    assert sum(forwards.sizes) == 3


class CommitLog:
    """Records the number of requests in every group commit of predicted outputs; the first commit
    waits until ``gather`` more requests queued behind it (as ForwardLog does for forwards)."""

    def __init__(self, core: VisionLoop, gather: int, fail: bool = False) -> None:
        self.commits = core.predict._commits
        self.gather, self.fail = gather, fail
        self.sizes: list[int] = []
        self._write = self.commits._write
        self._first = threading.Event()

    def __call__(self, writes: list[Any]) -> list[int]:
        if not self._first.is_set():
            self._first.set()
            deadline = time.monotonic() + 10
            while len(self.commits._queue) < self.gather and time.monotonic() < deadline:
                time.sleep(0.005)
        self.sizes.append(len(writes))
        if self.fail:
            raise OSError("disk full")
        return self._write(writes)


def commit_log(core: VisionLoop, monkeypatch: pytest.MonkeyPatch, gather: int, fail: bool = False) -> CommitLog:
    log = CommitLog(core, gather, fail)
    monkeypatch.setattr(core.predict._commits, "_write", log)
    return log


def stored(core: VisionLoop) -> dict[str, dict]:
    with core.db.session() as s:
        return {o.id: o.result for o in s.scalars(select(Output))}


def test_outputs_of_concurrent_predicts_are_committed_together_and_every_one_is_stored(
        core: VisionLoop, api: Api, forwards: ForwardLog, monkeypatch: pytest.MonkeyPatch) -> None:
    commits = commit_log(core, monkeypatch, gather=len(PHOTOS) - 1)
    with ThreadPoolExecutor(len(PHOTOS)) as pool:
        responses = list(pool.map(lambda name: post(api, GENERAL, photo(name)), PHOTOS))
    assert [r.status_code for r in responses] == [200] * len(PHOTOS), [r.text[:300] for r in responses]
    assert max(commits.sizes) > 1 and sum(commits.sizes) == len(PHOTOS), commits.sizes
    outputs = stored(core)
    for r in responses:
        out = r.json()["outputs"][0]
        assert [c[0] for c in outputs[out["id"]]["concepts"][:5]] == [c["id"] for c in out["data"]["concepts"][:5]]
    assert core.usage.by_op(api.app_id) == {"predict": len(PHOTOS)}


def test_a_write_refused_for_one_request_of_a_group_commit_fails_only_that_request(
        core: VisionLoop, client: TestClient, api: Api, forwards: ForwardLog,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Three requests of a key with 2 operations left race past the usage check into one group commit
    with a fourth of another key: counting refuses the third, and only the third."""
    core.apps.create_app("metered")
    _, secret = core.apps.create_key("metered", monthly_limit=2)
    metered = Api(client, secret, "metered")
    monkeypatch.setattr(core.usage, "check", lambda caller, operations=1: None)
    commits = commit_log(core, monkeypatch, gather=3)
    calls = [(metered, "chelsea"), (metered, "coffee"), (metered, "astronaut"), (api, "rocket")]
    with ThreadPoolExecutor(len(calls)) as pool:
        responses = list(pool.map(lambda call: post(call[0], GENERAL, photo(call[1])), calls))
    codes = sorted((r.status_code, r.json()["status"]["code"]) for r in responses[:3])
    assert codes == [(200, 10000), (200, 10000), (429, 11006)], [r.text[:300] for r in responses]
    assert responses[3].status_code == 200
    assert max(commits.sizes) > 1, commits.sizes
    acknowledged = {r.json()["outputs"][0]["id"] for r in responses if r.status_code == 200}
    assert set(stored(core)) == acknowledged
    assert core.usage.by_op("metered") == {"predict": 2} and core.usage.by_op(api.app_id) == {"predict": 1}


def test_when_the_group_commit_fails_every_request_in_it_fails_and_none_is_acknowledged(
        core: VisionLoop, api: Api, forwards: ForwardLog, monkeypatch: pytest.MonkeyPatch) -> None:
    commits = commit_log(core, monkeypatch, gather=len(PHOTOS) - 1, fail=True)
    with ThreadPoolExecutor(len(PHOTOS)) as pool:
        responses = list(pool.map(lambda name: post(api, GENERAL, photo(name)), PHOTOS))
    assert {(r.status_code, r.json()["status"]["code"]) for r in responses} == {(500, 10020)}
    assert all("outputs" not in r.json() for r in responses)
    assert max(commits.sizes) > 1, commits.sizes
    assert stored(core) == {} and core.usage.by_op(api.app_id) == {}


def test_the_thread_settings_size_the_forward_and_the_request_pool(tmp_path: Path) -> None:
    settings = load_settings({"data_dir": tmp_path, "inference_threads": 1, "request_threads": 7}, environ={})
    core = VisionLoop(settings)
    try:
        assert core.runtime.threads == 1  # the networks load lazily, with this many intra-op threads
        with TestClient(create_app(settings, core)) as client:
            assert client.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().total_tokens) == 7
    finally:
        core.close()
    assert load_settings({"data_dir": tmp_path}, environ={}).inference_threads == 0  # 0: one per core
    with pytest.raises(SettingsError, match="VISIONLOOP_REQUEST_THREADS must be positive"):
        load_settings({"data_dir": tmp_path, "request_threads": 0}, environ={})
    with pytest.raises(SettingsError, match="VISIONLOOP_INFERENCE_THREADS must be 0 or more"):
        load_settings({"data_dir": tmp_path, "inference_threads": -1}, environ={})
