"""Inputs whose URL could not be fetched or decoded: stored with an error status, as Clarifai kept them,
and never read as images (search, the vector index, training, click learning); request errors
(SSRF refusals, invalid fields, bad base64) still store nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api, ImageServer, b64, free_port, photo, png_bytes
from visionloop import status
from visionloop.core import VisionLoop
from visionloop.inference.catalog import GENERAL
from visionloop.services.training.data import concept_data
from visionloop.services.training.detection_learning import annotated_images
from visionloop.store.tables import Input

MAX_IMAGE = 200_000


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"fetch_allow_hosts": "127.0.0.1", "max_image_bytes": MAX_IMAGE}


def _item(input_id: str, url: str, **data: Any) -> dict[str, Any]:
    return {"id": input_id, "data": {"image": {"url": url}, **data}}


def _listed(api: Api) -> tuple[int, int, dict[str, dict]]:
    r = api.get("/inputs", params={"per_page": 100})
    return r.status_code, r.json()["status"]["code"], {i["id"]: i for i in r.json()["inputs"]}


def _counts(api: Api) -> dict[str, int]:
    return api.get("/inputs/status").json()["counts"]


def _search(api: Api, *ands: dict) -> list[str]:
    r = api.post("/searches", {"query": {"ands": list(ands)}, "pagination": {"per_page": 100}})
    assert r.status_code == 200, r.text
    return sorted(h["input"]["id"] for h in r.json()["hits"])


def test_a_failed_download_is_stored_with_what_was_sent_and_its_cause(core: VisionLoop, api: Api,
                                                                       image_server: ImageServer) -> None:
    gone = image_server.url("/gone.jpg", b"", code=404)
    r = api.post("/inputs", {"inputs": [
        _item("ok", image_server.url("/ok.png", png_bytes())),
        _item("gone", gone, concepts=[{"id": "cat", "value": True}, {"id": "dog", "value": False}],
              metadata={"shop": {"aisle": 3}}, geo={"geo_point": {"latitude": 48.85, "longitude": 2.35}}),
    ]})
    assert (r.status_code, r.json()["status"]["code"]) == (200, status.MIXED_STATUS), r.text
    ok, failed = r.json()["inputs"]
    assert ok["status"]["code"] == status.INPUT_SUCCESS
    assert failed["id"] == "gone" and failed["data"]["image"] == {"url": gone}
    assert failed["status"] == {"code": status.INPUT_FAILED,
                                "description": "Input download failed: could not fetch image: HTTP 404",
                                "details": "inputs[1].data.image.url: could not fetch image: HTTP 404"}

    got = api.get("/inputs/gone")
    assert got.status_code == 200 and got.json()["status"]["code"] == status.SUCCESS
    stored = got.json()["input"]
    assert stored["status"]["code"] == status.INPUT_FAILED and "HTTP 404" in stored["status"]["description"]
    assert stored["data"]["image"] == {"url": gone}  # no image_info: there is no image
    assert {c["id"]: c["value"] for c in stored["data"]["concepts"]} == {"cat": 1.0, "dog": 0.0}
    assert stored["data"]["metadata"] == {"shop": {"aisle": 3}}
    assert stored["data"]["geo"] == {"geo_point": {"latitude": 48.85, "longitude": 2.35}}

    # a page listing it is MIXED_STATUS, HTTP 207, as Clarifai's was
    code, envelope, listed = _listed(api)
    assert (code, envelope) == (207, status.MIXED_STATUS) and set(listed) == {"ok", "gone"}
    assert listed["gone"]["status"]["code"] == status.INPUT_FAILED
    assert "207" in api.client.get("/openapi.json").json()["paths"]["/v2/inputs"]["get"]["responses"]
    assert _counts(api) == {"processed": 1, "to_process": 0, "errors": 1, "processing": 0}
    assert {c["id"] for c in api.get("/concepts").json()["concepts"]} >= {"cat", "dog"}
    assert core.usage.by_op(api.app_id) == {"inputs": 2}  # the download was tried and a row stored
    # the inputs a model's training reads: not it
    assert [i["id"] for i in api.get(f"/models/{GENERAL.id}/inputs").json()["inputs"]] == ["ok"]


def test_each_cause_is_named(api: Api, image_server: ImageServer) -> None:
    closed = f"http://127.0.0.1:{free_port()}/a.png"
    cases = {
        "missing": (image_server.url("/missing.png", b"", code=404), "could not fetch image: HTTP 404"),
        "broken": (image_server.url("/broken.png", b"", code=500), "could not fetch image: HTTP 500"),
        "large": (image_server.url("/large.png", b"\x89PNG" + bytes(MAX_IMAGE)),
                  f"over the limit of {MAX_IMAGE} bytes"),
        "text": (image_server.url("/page.png", b"<html>not an image</html>"), "corrupt or not an image"),
        "pdf": (image_server.url("/doc.png", b"%PDF-1.4 ..."), "PDF is not a supported image format"),
        "empty": (image_server.url("/empty.png", b""), "image data is empty"),
        "closed": (closed, "could not fetch image: connection failed"),
    }
    r = api.post("/inputs", {"inputs": [_item(name, url) for name, (url, _) in cases.items()]})
    # every item failed, but each is stored: no refusal (whose answer would say nothing changed)
    assert (r.status_code, r.json()["status"]["code"]) == (200, status.MIXED_STATUS), r.text
    assert [i["id"] for i in r.json()["inputs"]] == list(cases)
    for name, (url, cause) in cases.items():
        stored = api.get(f"/inputs/{name}").json()["input"]
        assert stored["status"]["code"] == status.INPUT_FAILED, name
        assert cause in stored["status"]["description"], (name, stored["status"])
        assert stored["data"]["image"]["url"] == url
    assert _counts(api)["errors"] == len(cases)


@pytest.mark.parametrize(("item", "code"), [
    (_item("ssrf", "http://10.0.0.1/a.png"), 30106),                   # not a host the operator allowed
    (_item("meta", "http://169.254.169.254/latest/meta-data"), 30106),  # nor this one
    (_item("ftp", "ftp://example.com/a.png"), 30106),
    (_item("numeric", "http://2130706433/a.png"), 30106),
    (_item("creds", "http://user:pw@127.0.0.1/a.png"), 30106),
    (_item("bad id!", "http://127.0.0.1:9/a.png"), 30104),
    ({"id": "nothing", "data": {"concepts": [{"id": "cat"}]}}, 30104),
    ({"id": "both", "data": {"image": {"url": "http://127.0.0.1:9/a.png", "base64": b64(png_bytes())}}}, 30104),
    ({"id": "b64", "data": {"image": {"base64": b64(b"not an image")}}}, 30104),
    (_item("concept", "http://127.0.0.1:9/a.png", concepts=[{"id": "cat"}, {"id": "cat"}]), 30104),
])
def test_a_refused_request_stores_nothing(api: Api, item: dict, code: int) -> None:
    r = api.post("/inputs", {"inputs": [item]})
    assert (r.status_code, r.json()["status"]["code"]) == (400, code), r.text
    assert api.get("/inputs").json()["inputs"] == []
    assert _counts(api)["errors"] == 0


def test_beside_a_refused_item_a_stored_failure_makes_the_batch_mixed(api: Api, image_server: ImageServer) -> None:
    r = api.post("/inputs", {"inputs": [_item("gone", image_server.url("/gone.png", b"", code=404)),
                                        _item("ssrf", "http://10.0.0.1/a.png")]})
    assert (r.status_code, r.json()["status"]["code"]) == (200, status.MIXED_STATUS), r.text
    assert [i["status"]["code"] for i in r.json()["inputs"]] == [status.INPUT_FAILED, 30106]
    assert set(_listed(api)[2]) == {"gone"}


def test_a_redirect_to_a_private_address_is_refused_not_stored(api: Api, image_server: ImageServer) -> None:
    # the loopback server is allowed; where it redirects to is checked like the URL sent
    import http.server
    import threading

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(302)
            self.send_header("Location", "http://10.0.0.1/secret.png")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = api.post("/inputs", {"inputs": [_item("hop", f"http://127.0.0.1:{server.server_address[1]}/a.png")]})
    finally:
        server.shutdown()
        server.server_close()
    assert (r.status_code, r.json()["status"]["code"]) == (400, 30106), r.text
    assert "not a public address" in r.json()["status"]["details"]
    assert api.get("/inputs/hop").status_code == 404


def test_sent_again_with_the_same_id_it_is_replaced(api: Api, image_server: ImageServer) -> None:
    url = image_server.url("/later.png", b"", code=404)
    api.post("/inputs", {"inputs": [_item("later", url, concepts=[{"id": "old"}], metadata={"try": 1})]})
    # still failing: replaced by the new failure
    r = api.post("/inputs", {"inputs": [_item("later", image_server.url("/later.png", b"", code=503),
                                              metadata={"try": 2})]})
    assert r.json()["inputs"][0]["status"]["code"] == status.INPUT_FAILED, r.text
    stored = api.get("/inputs/later").json()["input"]
    assert "HTTP 503" in stored["status"]["description"] and stored["data"]["metadata"] == {"try": 2}
    assert stored["data"]["concepts"] == []

    # fixed: replaced by the input with its image, searchable at once
    image_server.url("/later.png", photo("chelsea"))
    r = api.post("/inputs", {"inputs": [_item("later", url, concepts=[{"id": "new"}], metadata={"try": 3})]})
    assert (r.status_code, r.json()["status"]["code"]) == (200, status.SUCCESS), r.text
    stored = api.get("/inputs/later").json()["input"]
    assert stored["status"]["code"] == status.INPUT_SUCCESS and stored["data"]["image"]["image_info"]["width"] > 0
    assert [c["id"] for c in stored["data"]["concepts"]] == ["new"] and stored["data"]["metadata"] == {"try": 3}
    assert _counts(api) == {"processed": 1, "to_process": 0, "errors": 0, "processing": 0}
    assert _search(api, {"output": {"input": {"id": "later"}}}) == ["later"]
    assert _search(api, {"input": {"data": {"concepts": [{"id": "new"}]}}}) == ["later"]
    assert _listed(api)[:2] == (200, status.SUCCESS)

    # an input with its image is not replaced
    r = api.post("/inputs", {"inputs": [_item("later", url, allow_duplicate_url=True)]})
    assert r.json()["status"]["code"] == status.INPUT_DUPLICATE, r.text


def test_a_failed_url_is_no_duplicate_of_itself(api: Api, image_server: ImageServer) -> None:
    url = image_server.url("/flaky.png", b"", code=503)
    body = {"inputs": [{"data": {"image": {"url": url}}}]}
    first = api.post("/inputs", body).json()["inputs"][0]["id"]
    image_server.url("/flaky.png", png_bytes())
    r = api.post("/inputs", body)  # the same URL, no id, no allow_duplicate_url: the failed one holds no image
    assert r.json()["status"]["code"] == status.SUCCESS, r.text
    assert r.json()["inputs"][0]["id"] != first
    assert api.post("/inputs", body).json()["status"]["code"] == status.INPUT_DUPLICATE


def test_it_can_be_patched_and_deleted_like_any_input(api: Api, image_server: ImageServer) -> None:
    url = image_server.url("/x.png", b"", code=404)
    api.post("/inputs", {"inputs": [_item(f"f{i}", url) for i in range(4)]})
    r = api.patch("/inputs", {"action": "merge", "inputs": [{"id": "f0", "data": {"metadata": {"fix": "me"}}}]})
    assert r.status_code == 200, r.text
    assert r.json()["inputs"][0]["status"]["code"] == status.INPUT_FAILED
    assert api.get("/inputs/f0").json()["input"]["data"]["metadata"] == {"fix": "me"}
    assert api.delete("/inputs/f0").json()["status"]["code"] == status.SUCCESS
    assert api.delete("/inputs", {"ids": ["f1", "f2"]}).json()["status"]["code"] == status.SUCCESS
    assert set(_listed(api)[2]) == {"f3"} and _counts(api)["errors"] == 1
    assert api.delete("/inputs", {"delete_all": True}).json()["status"]["code"] == status.SUCCESS
    assert _listed(api)[:2] == (200, status.SUCCESS) and _counts(api)["errors"] == 0


def test_search_prediction_and_training_never_read_it(core: VisionLoop, api: Api, image_server: ImageServer) -> None:
    url = image_server.url("/cat-gone.jpg", b"", code=404)
    data = {"concepts": [{"id": "cat", "value": True}], "metadata": {"kind": "pet"},
            "geo": {"geo_point": {"latitude": 48.85, "longitude": 2.35}}}
    r = api.post("/inputs", {"inputs": [
        {"id": "good", "data": {"image": {"base64": b64(photo("chelsea"))}, **data}},
        {"id": "other", "data": {"image": {"base64": b64(photo("coffee"))}}},
        _item("bad", url, **data),
    ]})
    assert [i["status"]["code"] for i in r.json()["inputs"]] == [30000, 30000, 30002], r.text

    assert _search(api, {"input": {"data": {"concepts": [{"id": "cat", "value": True}]}}}) == ["good"]
    assert _search(api, {"input": {"data": {"concepts": [{"id": "cat", "value": False}]}}}) == ["other"]
    assert _search(api, {"input": {"data": {"metadata": {"kind": "pet"}}}}) == ["good"]
    assert _search(api, {"input": {"data": {"image": {"url": url}}}}) == []
    near = {"geo_point": {"latitude": 48.85, "longitude": 2.35}, "geo_limit": {"type": "withinKilometers", "value": 5}}
    assert _search(api, {"input": {"data": {"geo": near}}}) == ["good"]
    assert _search(api, {"output": {"data": {"concepts": [{"name": "cat", "value": False}]}}}) in (
        ["good", "other"], ["other"])  # predicted: never the input without an image
    assert _search(api, {"output": {"input": {"id": "good"}}}) == ["good", "other"]  # visual: the index
    assert "bad" not in {i for i, _ in core.indexes.get(api.app_id).ids.values()}

    # its image is asked for: refused, naming why
    r = api.post("/searches", {"query": {"ands": [{"output": {"input": {"id": "bad"}}}]}})
    assert (r.status_code, r.json()["status"]["code"]) == (400, status.INPUT_FAILED), r.text
    assert r.json()["status"]["details"] == ("query: input 'bad' has no image, its download failed: could not fetch "
                                             "image: HTTP 404; add it again with the same id and a URL that works")
    r = api.post(f"/models/{GENERAL.id}/outputs", {"inputs": [{"id": "bad"}]})
    assert (r.status_code, r.json()["status"]["code"]) == (400, status.INPUT_FAILED), r.text
    assert r.json()["outputs"][0]["status"]["details"].startswith("inputs[0].id: input 'bad' has no image")

    # training: the app's annotations vote for images; the input without one casts none
    with core.db.session() as s:
        data = concept_data(s, api.app_id, core.models.get(api.app_id, GENERAL.id).model)
    assert [lab.item for lab in data.labels] == [(_digest_of(core, api.app_id, "good"), "cat")]


def _digest_of(core: VisionLoop, app_id: str, input_id: str) -> str:
    with core.db.session() as s:
        row = s.get(Input, (app_id, input_id))
        assert row is not None and row.digest is not None
        return row.digest


def test_unlinked_feedback_naming_it_gives_no_label(core: VisionLoop, api: Api, image_server: ImageServer) -> None:
    api.post("/inputs", {"inputs": [_item("bad", image_server.url("/bad.jpg", b"", code=404))]})
    body = {"input": {"id": "bad", "data": {"concepts": [{"id": "cat", "value": True}]},
                      "feedback_info": {"event_type": "annotation", "output_id": "oooooooid", "end_user_id": "u"}}}
    r = api.post(f"/models/{GENERAL.id}/feedback", body)
    assert r.json()["status"]["code"] == status.SUCCESS, r.text
    (event,) = api.get("/feedback").json()["feedback"]
    assert event["unlinked"] is True and event["data"]["digest"] is None  # recorded, with no image to learn on
    with core.db.session() as s:
        assert concept_data(s, api.app_id, core.models.get(api.app_id, GENERAL.id).model).labels == []


def test_a_failed_download_has_no_image_to_serve_and_its_regions_teach_nothing(core: VisionLoop, api: Api,
                                                                               image_server: ImageServer) -> None:
    box = {"top_row": 0.1, "left_col": 0.1, "bottom_row": 0.5, "right_col": 0.5}
    r = api.post("/inputs", {"inputs": [_item("gone", image_server.url("/gone.jpg", b"", code=404), regions=[
        {"region_info": {"bounding_box": box}, "data": {"concepts": [{"id": "acme", "value": True}]}}])]})
    assert r.json()["inputs"][0]["status"]["code"] == status.INPUT_FAILED, r.text
    assert [g["data"]["concepts"][0]["id"] for g in api.get("/inputs/gone").json()["input"]["data"]["regions"]] == ["acme"]
    for size in ("original", "thumbnail"):
        r = api.get("/inputs/gone/image", params={"size": size})
        assert r.status_code == 400 and r.json()["status"]["code"] == status.INPUT_FAILED, r.text
        assert "has no image, its download failed" in r.json()["status"]["details"]
    with core.db.session() as s:
        assert annotated_images(s, api.app_id, None) == {}
