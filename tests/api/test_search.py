"""POST /v2/searches through HTTP: concepts, predictions, metadata, visual similarity, memory."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageOps
from sqlalchemy import select

from tests.helpers import Api, b64, photo
from visionloop.config import load_settings
from visionloop.core import VisionLoop
from visionloop.http.app import create_app
from visionloop.store.tables import Search, SearchHit

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "camera")


def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture
def gallery(api: Api) -> Api:
    inputs = []
    for name in PHOTOS:
        concepts = [{"id": "pet", "value": name == "chelsea"}]
        inputs.append({"id": name, "data": {"image": {"base64": b64(photo(name))}, "concepts": concepts,
                                            "metadata": {"source": "skimage", "name": name,
                                                         "tags": ["photo", name]}}})
    r = api.post("/inputs", {"inputs": inputs})
    assert r.json()["status"]["code"] == 10000, r.text
    return api


def search(api: Api, *ands: dict, page: int = 1, per_page: int = 20) -> dict:
    r = api.post("/searches", {"query": {"ands": list(ands)}, "pagination": {"page": page, "per_page": per_page}})
    assert r.status_code == 200, r.text
    return r.json()


def hit_ids(body: dict) -> list[str]:
    return [h["input"]["id"] for h in body["hits"]]


def test_by_annotated_concept_and_negation(gallery: Api) -> None:
    body = search(gallery, {"input": {"data": {"concepts": [{"id": "pet", "value": True}]}}})
    assert hit_ids(body) == ["chelsea"] and len(body["id"]) == 32
    body = search(gallery, {"input": {"data": {"concepts": [{"name": "pet", "value": False}]}}})
    assert sorted(hit_ids(body)) == sorted(set(PHOTOS) - {"chelsea"})
    # names match case-insensitively, as feedback resolves them
    assert hit_ids(search(gallery, {"input": {"data": {"concepts": [{"name": "PET", "value": True}]}}})) == ["chelsea"]


def test_by_predicted_concept(gallery: Api) -> None:
    body = search(gallery, {"output": {"data": {"concepts": [{"name": "cat"}]}}})
    assert hit_ids(body)[0] == "chelsea"
    assert body["hits"][0]["score"] > 0.5
    assert hit_ids(search(gallery, {"output": {"data": {"concepts": [{"name": "Cat"}]}}}))[0] == "chelsea"
    body = search(gallery, {"output": {"data": {"concepts": [{"id": "n02121808", "value": 1.0}]}}})
    assert hit_ids(body)[0] == "chelsea"


def test_by_metadata_and_combined(gallery: Api) -> None:
    assert hit_ids(search(gallery, {"input": {"data": {"metadata": {"name": "rocket"}}}})) == ["rocket"]
    assert sorted(hit_ids(search(gallery, {"input": {"data": {"metadata": {"source": "skimage"}}}}))) == sorted(PHOTOS)
    assert hit_ids(search(gallery, {"input": {"data": {"metadata": {"tags": ["coffee"]}}}})) == ["coffee"]
    body = search(gallery, {"input": {"data": {"metadata": {"source": "skimage"}}}},
                  {"output": {"data": {"concepts": [{"name": "cat"}]}}})
    assert hit_ids(body) == ["chelsea"]


def test_visual_near_duplicates_rank_first(gallery: Api) -> None:
    cat = Image.open(io.BytesIO(photo("chelsea")))
    flipped = jpeg(ImageOps.mirror(cat))
    body = search(gallery, {"output": {"input": {"data": {"image": {"base64": b64(flipped)}}}}})
    assert hit_ids(body)[0] == "chelsea"
    assert body["hits"][0]["score"] > body["hits"][1]["score"]
    w, h = cat.size
    cropped = jpeg(cat.crop((w // 10, h // 10, w - w // 10, h - h // 10)))
    assert hit_ids(search(gallery, {"output": {"input": {"data": {"image": {"base64": b64(cropped)}}}}}))[0] == "chelsea"
    body = search(gallery, {"output": {"input": {"id": "coffee", "data": {"image": {}}}}})
    assert hit_ids(body)[0] == "coffee" and body["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert len(body["hits"]) == len(PHOTOS)


def test_pagination_and_memory(gallery: Api, core: VisionLoop) -> None:
    ref = {"output": {"input": {"id": "chelsea"}}}
    first = search(gallery, ref, page=1, per_page=2)
    second = search(gallery, ref, page=2, per_page=2)
    assert len(first["hits"]) == 2 and len(second["hits"]) == 2
    assert not set(hit_ids(first)) & set(hit_ids(second))
    assert search(gallery, ref, page=4, per_page=2)["hits"] == []
    with core.db.session() as s:
        remembered = s.get(Search, second["id"])
        assert remembered is not None and remembered.app_id == "app-a" and remembered.kind == "visual"
        hits = list(s.scalars(select(SearchHit).where(SearchHit.search_id == second["id"]).order_by(SearchHit.rank)))
        assert [(h.rank, h.input_id) for h in hits] == [(3, hit_ids(second)[0]), (4, hit_ids(second)[1])]


def test_deleted_inputs_leave_results(gallery: Api) -> None:
    gallery.delete("/inputs/chelsea")
    assert "chelsea" not in hit_ids(search(gallery, {"output": {"input": {"data": {"image": {
        "base64": b64(photo("chelsea"))}}}}}))
    assert search(gallery, {"input": {"data": {"concepts": [{"id": "pet"}]}}})["hits"] == []


def test_other_apps_inputs_never_appear(gallery: Api, other_api: Api) -> None:
    other_api.post("/inputs", {"inputs": [{"id": "theirs", "data": {"image": {"base64": b64(photo("chelsea"))},
                                                                     "concepts": [{"id": "pet"}]}}]})
    assert hit_ids(search(other_api, {"input": {"data": {"concepts": [{"id": "pet"}]}}})) == ["theirs"]
    visual = search(other_api, {"output": {"input": {"data": {"image": {"base64": b64(photo("chelsea"))}}}}})
    assert hit_ids(visual) == ["theirs"]
    assert "theirs" not in hit_ids(search(gallery, {"output": {"input": {"data": {"image": {
        "base64": b64(photo("chelsea"))}}}}}))
    r = other_api.post("/searches", {"query": {"ands": [{"output": {"input": {"id": "chelsea"}}}]}})
    assert r.status_code == 404 and r.json()["status"]["code"] == 30102


@pytest.mark.parametrize("query,needle", [
    ({"ands": []}, "query.ands"),
    ({}, "query.ands"),
    ({"ands": [{}]}, "query.ands[0]"),
    ({"ands": [{"banana": {}}]}, "banana"),
    ({"ands": [{"input": {"data": {"concepts": []}}}]}, "concepts"),
    ({"ands": [{"input": {"data": {"concepts": [{"value": True}]}}}]}, "id or name"),
    ({"ands": [{"input": {"data": {"concepts": [{"id": "x", "value": 7}]}}}]}, "value"),
    ({"ands": [{"output": {"input": {"data": {"image": {"base64": 5}}}}}]}, "base64"),
    ({"ands": [{"output": {"input": {}}}]}, "query.ands[0]"),
    ({"ands": "everything"}, "query.ands"),
])
def test_bad_queries(api: Api, query: dict, needle: str) -> None:
    r = api.post("/searches", {"query": query})
    assert r.status_code == 400, r.text
    assert r.json()["status"]["code"] == 40002 and needle in r.json()["status"]["details"]


def test_malformed_query_image(api: Api) -> None:
    r = api.post("/searches", {"query": {"ands": [{"output": {"input": {"data": {"image": {"base64": b64(b"junk")}}}}}]}})
    assert r.status_code == 400 and r.json()["status"]["code"] == 30104


def test_another_process_sees_inputs_added_and_deleted_through_the_first(api: Api, core: VisionLoop) -> None:
    """Two servers on one database: each keeps its own visual index, and neither serves a stale one."""
    other = VisionLoop(load_settings({"data_dir": core.settings.data_dir, "database_url": core.settings.database_url},
                                     environ={}), core.runtime)
    try:
        with TestClient(create_app(other.settings, other)) as client:
            there = Api(client, api.key, api.app_id)

            def top(by: str) -> list[str]:
                return hit_ids(search(there, {"output": {"input": {"data": {"image": {"base64": b64(photo(by))}}}}}))

            assert api.post("/inputs", {"inputs": [{"id": "coffee", "data": {"image": {
                "base64": b64(photo("coffee"))}}}]}).status_code == 200
            assert top("coffee") == ["coffee"]                      # the other server builds its index
            assert api.post("/inputs", {"inputs": [{"id": "cat", "data": {"image": {
                "base64": b64(photo("chelsea"))}}}]}).status_code == 200
            assert top("chelsea")[0] == "cat"                       # added through the first server
            assert api.delete("/inputs/cat").status_code == 200
            assert top("chelsea") == ["coffee"]
            assert len(other.indexes.get(api.app_id).ids) == 1     # and gone from its index too
    finally:
        other.close()
