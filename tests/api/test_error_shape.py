"""Every route answers every failure with the Clarifai status envelope: never a 500, never a traceback.

Walks the app's own route table, so routes added later are covered without editing this file.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import Api, b64, png_bytes
from visionloop.core import VisionLoop
from visionloop.http.app import create_app


def routes(client: TestClient) -> list[tuple[str, str, bool]]:
    """(method, path template, takes a body) for every /v2 route, from the app's OpenAPI schema."""
    out = []
    for path, ops in client.app.openapi()["paths"].items():  # type: ignore[attr-defined]
        if path.startswith("/v2"):
            for method, op in sorted(ops.items()):
                out.append((method.upper(), path, "requestBody" in op))
    return out


def fill(path: str, app_id: str) -> str:
    path = path.replace("{user_id}", "me").replace("{app_id}", app_id)
    return re.sub(r"\{[^}]+\}", "does-not-exist", path)


def assert_envelope(r: Any, *, expect_http: int | None = None) -> dict:
    assert r.status_code < 500, (r.request.method, r.request.url, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    st = body["status"]
    assert isinstance(st["code"], int) and isinstance(st["description"], str) and st["description"]
    assert "Traceback" not in r.text and 'File "' not in r.text
    if expect_http is not None:
        assert r.status_code == expect_http, (r.request.method, r.request.url, r.text)
    return st


def test_route_table_is_not_empty(client: TestClient) -> None:
    assert len(routes(client)) >= 10


def test_every_route_without_key(client: TestClient) -> None:
    for method, path, _ in routes(client):
        r = client.request(method, fill(path, "app-a"), content=b"{}")
        st = assert_envelope(r, expect_http=401)
        assert st["code"] == 11009


def test_every_route_with_bad_key(client: TestClient) -> None:
    for method, path, _ in routes(client):
        r = client.request(method, fill(path, "app-a"), content=b"{}", headers={"Authorization": "Key nope"})
        assert assert_envelope(r, expect_http=401)["code"] == 11009


@pytest.mark.parametrize("payload,codes", [
    (b"{not json", {11100}),
    (b'{"inputs": [1, 2,]}', {11100}),
    (b"[]", {11100, 11102}),
    (b'"a string"', {11100, 11102}),
    (b"", {11100, 11102}),
    (b'{"inputs": "nope", "concepts": 7, "query": [], "input": 3, "model": "x", "ids": {}}', {11102}),
])
def test_every_body_route_rejects_malformed_bodies(client: TestClient, api: Api, payload: bytes,
                                                   codes: set[int]) -> None:
    for method, path, has_body in routes(client):
        if not has_body:
            continue
        r = client.request(method, fill(path, "app-a"), content=payload, headers=api.headers())
        st = assert_envelope(r)
        assert r.status_code in (400, 404), (method, path, r.text)
        if r.status_code == 400:
            assert st["code"] in codes, (method, path, r.text)


def test_every_route_with_unknown_ids_or_app(client: TestClient, api: Api) -> None:
    for method, path, _ in routes(client):
        r = client.request(method, fill(path, "app-a"), json={}, headers=api.headers())
        assert_envelope(r)
        if "{app_id}" in path:
            r = client.request(method, fill(path, "someone-elses-app"), json={}, headers=api.headers())
            assert assert_envelope(r, expect_http=404)["code"] == 11101


def test_unknown_route_and_method(api: Api) -> None:
    assert assert_envelope(api.get("/no/such/route"), expect_http=404)["code"] == 11101
    assert assert_envelope(api.request("PUT", "/inputs"), expect_http=405)["code"] == 11103


def test_body_over_limit_is_a_clean_413(core) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    small = replace(core.settings, max_body_bytes=1000)
    with TestClient(create_app(small, core), raise_server_exceptions=False) as c:
        big = b'{"inputs": [' + b" " * 5000 + b"]}"
        r = c.post("/v2/inputs", content=big, headers={"Authorization": "Key x"})
        assert assert_envelope(r, expect_http=413)["code"] == 11102

        def chunks():  # no Content-Length: the stream is cut once it passes the limit
            for _ in range(10):
                yield b" " * 500

        r = c.post("/v2/inputs", content=chunks(), headers={"Authorization": "Key x"})
        assert assert_envelope(r, expect_http=413)["code"] == 11102


def test_form_content_type_is_read_as_json(api: Api) -> None:
    r = api.client.post("/v2/concepts", content=b'{"concepts": [{"id": "curl"}]}',
                        headers={**api.headers(), "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("value", "reason"), [
    ("NaN", "NaN"), ("Infinity", "Infinity"), ("-Infinity", "Infinity"),
    ("1e999", "inputs[0].data.metadata.score: the number 1e999 is beyond the range of a double"),
    ("1" + "0" * 400, "inputs[0].data.metadata.score: the number 1000"),
    ('"\\ud800"', "inputs[0].data.metadata.score holds a lone UTF-16 surrogate"),
    ("[" * 100 + "]" * 100, "deeper than"),
])
def test_json_that_would_break_a_response_is_refused_before_anything_is_stored(api: Api, value: str,
                                                                               reason: str) -> None:
    body = '{"inputs": [{"id": "i1", "data": {"image": {"base64": "%s"}, "metadata": {"score": %s}}}]}'
    r = api.client.post("/v2/inputs", content=(body % (b64(png_bytes()), value)).encode(), headers=api.headers())
    st = assert_envelope(r, expect_http=400)
    refused_as = 11102 if "the number" in reason else 11100  # a field out of range, not malformed JSON
    assert st["code"] == refused_as and reason in st["details"], st
    assert api.get("/inputs").json()["inputs"] == []


def test_an_unexpected_failure_is_answered_and_not_raised_to_the_server(core: VisionLoop, api: Api,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure re-raised to the server made it drop the connection: a pooled client's next request failed."""
    def broken(*_: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(core.models, "list", broken)
    with TestClient(create_app(core.settings, core), raise_server_exceptions=True) as c:
        r = c.get("/v2/models", headers=api.headers())
        assert r.status_code == 500 and r.json()["status"]["code"] == 10020 and "boom" not in r.text
        assert c.get("/v2/concepts", headers=api.headers()).status_code == 200
