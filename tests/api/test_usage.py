"""Usage metering through HTTP: predict, search and input adds are counted per key and month, and a
key's monthly limit refuses each of them (11006) before any work; nothing refused is counted."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.helpers import Api, b64, png_bytes
from visionloop.core import VisionLoop

GENERAL = "aaa03c23b3724a16a56b629203edc62c"


def image(color: tuple[int, int, int]) -> dict[str, Any]:
    return {"data": {"image": {"base64": b64(png_bytes(color))}}}


def test_each_billable_operation_is_counted_and_the_limit_refuses_the_next(core: VisionLoop,
                                                                           client: TestClient) -> None:
    core.apps.create_app("metered")
    _, secret = core.apps.create_key("metered", monthly_limit=4)
    api = Api(client, secret, "metered")
    assert api.post("/inputs", {"inputs": [image((1, 2, 3)), image((4, 5, 6))]}).status_code == 200
    assert api.post(f"/models/{GENERAL}/outputs", {"inputs": [image((7, 8, 9))]}).status_code == 200
    search = {"query": {"ands": [{"input": {"data": {"concepts": [{"id": "nothing"}]}}}]}}
    assert api.post("/searches", search).status_code == 200
    assert core.usage.by_op("metered") == {"inputs": 2, "predict": 1, "search": 1}
    for path, body in (("/inputs", {"inputs": [image((10, 11, 12))]}),
                       (f"/models/{GENERAL}/outputs", {"inputs": [image((7, 8, 9))]}), ("/searches", search)):
        r = api.post(path, body)
        assert (r.status_code, r.json()["status"]["code"]) == (429, 11006), (path, r.text)
    assert core.usage.by_op("metered") == {"inputs": 2, "predict": 1, "search": 1}
    assert len(api.get("/inputs").json()["inputs"]) == 2  # the refused add stored nothing


def test_an_input_refused_by_its_checks_is_not_counted(core: VisionLoop, client: TestClient) -> None:
    core.apps.create_app("metered")
    _, secret = core.apps.create_key("metered")
    api = Api(client, secret, "metered")
    r = api.post("/inputs", {"inputs": [image((1, 2, 3)), {"data": {"image": {"base64": "bm90IGFuIGltYWdl"}}}]})
    assert r.json()["status"]["code"] == 10010, r.text  # MIXED_STATUS: one stored, one refused
    assert core.usage.by_op("metered") == {"inputs": 1}


def test_a_batch_that_would_pass_the_limit_is_refused_whole(core: VisionLoop, client: TestClient) -> None:
    """The check was 'used up yet?': a key limited to 3 added 10 inputs in one request."""
    core.apps.create_app("metered")
    _, secret = core.apps.create_key("metered", monthly_limit=3)
    api = Api(client, secret, "metered")
    r = api.post("/inputs", {"inputs": [image((i, i, i)) for i in range(10)]})
    assert (r.status_code, r.json()["status"]["code"]) == (429, 11006), r.text
    assert "3 left, and this request needs 10" in r.json()["status"]["details"]
    r = api.post(f"/models/{GENERAL}/outputs", {"inputs": [image((i, 0, 0)) for i in range(4)]})
    assert (r.status_code, r.json()["status"]["code"]) == (429, 11006), r.text
    assert core.usage.by_op("metered") == {} and api.get("/inputs").json()["inputs"] == []
    assert api.post("/inputs", {"inputs": [image((i, i, i)) for i in range(3)]}).status_code == 200  # exactly 3 fit


def test_requests_racing_past_the_check_are_refused_where_they_are_counted(core: VisionLoop,
                                                                           client: TestClient) -> None:
    """Two requests may both pass the check before either counts: the count itself refuses the second."""
    core.apps.create_app("metered")
    _, secret = core.apps.create_key("metered", monthly_limit=2)
    api = Api(client, secret, "metered")
    passed_check = core.usage.check
    core.usage.check = lambda caller, operations=1: None  # type: ignore[method-assign]  # both raced past it
    try:
        assert api.post("/inputs", {"inputs": [image((1, 1, 1))]}).status_code == 200
        r = api.post("/inputs", {"inputs": [image((2, 2, 2)), image((3, 3, 3))]})
        p = api.post(f"/models/{GENERAL}/outputs", {"inputs": [image((4, 4, 4)), image((5, 5, 5))]})
    finally:
        core.usage.check = passed_check  # type: ignore[method-assign]
    assert (r.status_code, r.json()["status"]["code"]) == (429, 11006), r.text
    assert (p.status_code, p.json()["status"]["code"]) == (429, 11006), p.text
    assert core.usage.by_op("metered") == {"inputs": 1} and len(api.get("/inputs").json()["inputs"]) == 1
