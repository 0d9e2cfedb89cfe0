"""Refusals say where to look: bad JSON names its line and column, an unknown model where valid
ids are listed, and a missing field the misspelt fields found beside it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api, b64, png_bytes

GENERAL = "aaa03c23b3724a16a56b629203edc62c"


def details(r: Any) -> str:
    return r.json()["status"]["details"]


@pytest.mark.parametrize("path", ["/inputs", f"/models/{GENERAL}/outputs", f"/models/{GENERAL}/feedback"])
def test_bad_json_names_its_line_and_column(api: Api, path: str) -> None:
    r = api.client.post("/v2" + path, content=b'{"inputs": [\n  {"data": {}}\n  {"data": {}}]}',
                        headers={**api.headers(), "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["status"]["code"] == 11100, r.text
    assert "Expecting ',' delimiter at line 3, column 3" in details(r), r.text


def test_an_unknown_model_says_where_the_valid_ids_are(api: Api) -> None:
    r = api.post("/models/genral-v1.3/outputs", {"inputs": [{"data": {"image": {"base64": b64(png_bytes())}}}]})
    assert r.status_code == 404 and r.json()["status"]["code"] == 21200
    assert "GET /v2/models" in details(r) and "general-v1.3" in details(r), r.text


@pytest.mark.parametrize(("data", "named"), [
    ({"imgae": {"base64": "x"}}, "'imgae'"),                # beside the missing image
    ({"image": {"bse64": "x", "uri": "y"}}, "'bse64', 'uri'"),  # in the image that lacks base64 and url
])
@pytest.mark.parametrize("path", ["/inputs", f"/models/{GENERAL}/outputs"])
def test_a_missing_image_names_the_unknown_fields_beside_it(api: Api, path: str, data: dict, named: str) -> None:
    r = api.post(path, {"inputs": [{"data": data}]})
    assert r.status_code == 400, r.text
    assert "data.image" in details(r) and f"unknown fields beside it, which were ignored: {named}" in details(r)


def test_a_missing_top_level_field_names_the_unknown_ones(api: Api) -> None:
    r = api.post("/inputs", {"input": [{"data": {"image": {"base64": b64(png_bytes())}}}]})
    assert r.status_code == 400 and "inputs: Field required" in details(r)
    assert "'input'" in details(r), r.text


def test_unknown_fields_stay_accepted_when_nothing_is_missing(api: Api) -> None:
    """The official clients send fields visionloop does not read (user_app_id, ...)."""
    r = api.post("/inputs", {"user_app_id": {"app_id": "x"}, "inputs": [{"id": "a", "extra": 1, "data": {
        "image": {"base64": b64(png_bytes()), "color": "red"}, "imgae": {}}}]})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("path", "body", "named"), [
    (f"/models/{GENERAL}/feedback", {"input": {"data": {"concpets": [{"id": "cat"}]}, "feedback_info": {
        "event_type": "annotation", "output_id": "o"}}}, "'concpets'"),
    (f"/models/{GENERAL}/feedback", {"input": {"data": {"concepts": [{"id": "cat"}]}, "feedbak_info": {
        "event_type": "annotation", "output_id": "o"}}}, "'feedbak_info'"),
    ("/searches/feedback", {"input": {"id": "i", "feedback_info": {"event_type": "search_click",
                                                                   "serach_id": "s"}}}, "'serach_id'"),
])
def test_feedback_missing_a_field_names_the_unknown_ones_beside_it(api: Api, path: str, body: dict,
                                                                   named: str) -> None:
    r = api.post(path, body)
    assert r.status_code == 400 and r.json()["status"]["code"] == 11102, r.text
    assert f"unknown fields beside it, which were ignored: {named}" in details(r), r.text


def test_feedback_with_unknown_fields_and_nothing_missing_is_accepted(api: Api) -> None:
    out = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(png_bytes())}}}]})
    info = {"event_type": "annotation", "output_id": out.json()["outputs"][0]["id"], "client": "x"}
    r = api.post(f"/models/{GENERAL}/feedback", {"input": {"data": {"concepts": [{"id": "cat"}], "extra": 1},
                                                           "feedback_info": info}})
    assert r.status_code == 200, r.text
