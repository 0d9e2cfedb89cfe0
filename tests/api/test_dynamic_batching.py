"""Concurrent predicts through HTTP share backbone forwards, and each gets what it would have got alone."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from visionloop.models.runtime import ModelRuntime
from tests.helpers import Api, b64, photo

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
