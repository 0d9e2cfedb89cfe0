"""Values a database may refuse: PostgreSQL enforces column widths and cannot hold NUL characters
where SQLite stores anything. Both backends give the same 4xx answers, never a 500."""

from __future__ import annotations

import pytest

from tests.helpers import Api, b64, png_bytes
from visionloop import errors
from visionloop.core import VisionLoop
from visionloop.inference.catalog import GENERAL
from visionloop.store.tables import Search

INVALID_REQUEST = 11102


def _code(r) -> int:  # type: ignore[no-untyped-def]
    return int(r.json()["status"]["code"])


def test_concept_names_and_languages_fit_their_columns(api: Api) -> None:
    r = api.post("/concepts", {"concepts": [{"id": "widest", "name": "n" * 255, "language": "x" * 16}]})
    assert r.status_code == 200, r.text
    assert r.json()["concepts"][0]["name"] == "n" * 255
    for bad, field in (({"id": "a", "name": "n" * 256}, "name: at most 255"),
                       ({"id": "b", "language": "x" * 17}, "language: at most 16"),
                       ({"id": "c", "name": "nul\x00name"}, "name: must not contain NUL")):
        r = api.post("/concepts", {"concepts": [bad]})
        assert r.status_code == 400 and _code(r) == INVALID_REQUEST, r.text
        assert field in r.json()["status"]["details"]
    r = api.patch("/concepts", {"action": "overwrite", "concepts": [{"id": "widest", "name": "n" * 256}]})
    assert r.status_code == 400 and "at most 255" in r.text
    r = api.patch("/concepts", {"action": "overwrite", "concepts": [{"id": "wid\x00est", "name": "ok"}]})
    assert r.status_code == 404, r.text
    r = api.post("/concepts/searches", {"concept_query": {"name": "n\x00*"}})
    assert r.status_code == 400 and _code(r) == INVALID_REQUEST, r.text
    assert api.get("/concepts/widest").json()["concept"]["name"] == "n" * 255


def test_nul_in_the_url_is_refused(api: Api) -> None:
    for path in ("/inputs/a%00b", "/concepts/a%00b", f"/models/{GENERAL.id}%00", "/inputs?page=1%00",
                 "/feedback?end_user_id=a%00"):
        r = api.get(path)
        assert r.status_code == 400 and _code(r) == INVALID_REQUEST, (path, r.text)
        assert "NUL" in r.json()["status"]["details"]


def test_ids_that_cannot_exist_are_not_found(api: Api) -> None:
    api.add_image("kept")
    r = api.delete("/inputs", {"ids": ["kept", "a\x00"]})
    assert r.status_code == 404, r.text
    assert api.get("/inputs/kept").status_code == 200  # nothing half-deleted
    r = api.patch("/inputs", {"action": "merge", "inputs": [{"id": "a\x00", "data": {"metadata": {"k": 1}}}]})
    assert r.status_code == 404, r.text


def test_predict_refuses_ids_an_output_cannot_keep(api: Api) -> None:
    image = {"base64": b64(png_bytes())}
    r = api.post(f"/models/{GENERAL.id}/outputs", {"inputs": [
        {"id": "fine", "data": {"image": image}},
        {"id": "x" * 65, "data": {"image": image}},
        {"id": "nul\x00"}]})
    assert r.status_code == 200, r.text  # a batch with some good items (Clarifai's mixed status)
    outputs = r.json()["outputs"]
    assert outputs[0]["status"]["code"] == 10000
    assert [o["status"]["code"] for o in outputs[1:]] == [30104, 30104]


def test_a_search_of_every_kind_is_remembered(api: Api, core: VisionLoop) -> None:
    api.add_image("one", concepts=[{"id": "thing"}], metadata={"k": 1})
    query = {"query": {"ands": [
        {"input": {"data": {"concepts": [{"id": "thing"}]}}},
        {"output": {"data": {"concepts": [{"name": "dog", "value": False}]}}},
        {"input": {"data": {"metadata": {"k": 1}}}},
        {"input": {"data": {"image": {"url": "https://example.invalid/one.png"}}}},
        {"output": {"input": {"data": {"image": {"base64": b64(png_bytes())}}}}},
    ]}}
    r = api.post("/searches", query)  # its kind is 'annotated+metadata+predicted+url+visual' (39 characters)
    assert r.status_code == 200, r.text
    with core.db.session() as s:
        stored = s.get(Search, r.json()["id"])
    assert stored is not None and stored.kind == "annotated+metadata+predicted+url+visual"


def test_values_only_postgresql_refuses_are_client_errors(core, api: Api) -> None:  # type: ignore[no-untyped-def]
    """What no check catches before the database (a NUL in a search term) is a 400, not a 500."""
    r = api.post("/searches", {"query": {"ands": [{"input": {"data": {"image": {"url": "http://a/\x00"}}}}]}})
    if core.db.engine.dialect.name == "postgresql":
        assert r.status_code == 400 and _code(r) == INVALID_REQUEST, r.text
    else:
        assert r.status_code == 200 and r.json()["hits"] == [], r.text


def test_app_and_key_fields_fit_their_columns(core) -> None:  # type: ignore[no-untyped-def]
    """What the CLI stores (app names, key descriptions and limits) is checked the same way."""
    assert core.apps.create_app("wide", "n" * 255).name == "n" * 255
    for bad in (lambda: core.apps.create_app("wider", "n" * 256),
                lambda: core.apps.create_key("wide", monthly_limit=2**31),
                lambda: core.apps.create_key("wide", description="d" * 256)):
        with pytest.raises(errors.InvalidRequest):
            bad()
    info, _ = core.apps.create_key("wide", description="d" * 255, monthly_limit=2**31 - 1)
    assert info.description == "d" * 255
