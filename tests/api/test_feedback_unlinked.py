"""Feedback as Clarifai accepted it: ids of outputs and searches unknown here are stored unlinked.

Stored and marked in the log, counted apart in the version's metrics, learned from only where the
image resolves (a stored input, base64 bytes); VISIONLOOP_FEEDBACK_REQUIRE_LINK refuses as before.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.feedback_support import concept_body, feedback, region, region_body, search_body, status
from tests.helpers import Api, b64, photo
from visionloop.core import VisionLoop
from visionloop.inference.catalog import EMBED, FACE, GENERAL
from visionloop.services.training.data import concept_votes
from visionloop.store.tables import Model

BOX = {"top_row": 0.3, "left_col": 0.2, "bottom_row": 0.7, "right_col": 0.8}


def post(api: Api, body: Any, model: str = GENERAL.id) -> Any:
    return api.client.post(f"/v2/models/{model}/feedback", json=body, headers=api.headers())


def ok(r: Any) -> None:
    assert status(r) == (200, 10000, ""), r.text


def votes(core: VisionLoop, app_id: str, model_id: str) -> list[tuple[Any, bool]]:
    with core.db.session() as s:
        model = s.query(Model).filter(Model.id == model_id).one()
        found, *_ = concept_votes(s, app_id, model)
    return [(v.item, v.label) for v in found if v.end_user != "app:annotations"]


def test_unknown_output_is_stored_unlinked_and_marked(api: Api) -> None:
    ok(post(api, concept_body("oooooooid", [{"id": "dog"}, {"id": "cat", "value": False}], input_id="bb",
                              image={"url": "http://127.0.0.1:9/dog2.jpeg"})))
    (event,) = feedback(api)
    assert event["unlinked"] is True
    assert event["output_id"] is None and event["input_id"] is None  # 'bb' is no stored input
    data = event["data"]
    assert data["unlinked"] == {"output_id": "oooooooid", "input_id": "bb"}
    assert data["image"] == {"url": "http://127.0.0.1:9/dog2.jpeg"} and data["digest"] is None
    assert [(c["name"], c["value"]) for c in data["concepts"]] == [("dog", 1.0), ("cat", 0.0)]


def test_unlinked_feedback_is_learned_from_only_when_its_image_resolves(api: Api, core: VisionLoop) -> None:
    api.post("/inputs", {"inputs": [{"id": "stored-cat", "data": {"image": {"base64": b64(photo("chelsea"))}}}]})
    ok(post(api, concept_body("nope-1", [{"id": "cat"}], input_id="stored-cat",
                              image={"url": "http://127.0.0.1:9/elsewhere.jpg"}, end_user_id="u1")))
    ok(post(api, concept_body("nope-2", [{"id": "cup"}], image={"base64": b64(photo("coffee"))}, end_user_id="u2")))
    ok(post(api, concept_body("nope-3", [{"id": "dog"}], input_id="not-stored",
                              image={"url": "http://127.0.0.1:9/dog.jpg"}, end_user_id="u3")))
    by_user = {e["end_user_id"]: e for e in feedback(api)}
    stored_cat = by_user["u1"]
    assert stored_cat["input_id"] == "stored-cat"  # the stored input is the image; its URL only recorded
    assert stored_cat["data"]["image"] == {"url": "http://127.0.0.1:9/elsewhere.jpg"}
    coffee = by_user["u2"]["data"]
    assert coffee["digest"] and coffee["image"] == {"base64_sha256": coffee["digest"]}
    assert by_user["u3"]["data"]["digest"] is None and by_user["u3"]["input_id"] is None
    learned = votes(core, api.app_id, GENERAL.id)
    items = {item for item, _ in learned}
    assert (stored_cat["data"]["digest"], "n02121808") in items  # 'cat' resolved to the model's concept
    assert any(digest == coffee["digest"] for digest, _ in items)
    assert all(digest for digest, _ in items)  # the URL-only event gave no vote
    assert len(learned) == 2


def test_unlinked_feedback_is_counted_apart_in_metrics(api: Api) -> None:
    ok(post(api, concept_body("oooooooid", [{"id": "dog"}])))
    ok(post(api, concept_body("another-unknown", [{"id": "cat"}])))
    r = api.get(f"/models/{GENERAL.id}/versions/{GENERAL.base_version_id}/metrics")
    assert r.status_code == 200, r.text
    assert r.json()["model_version"]["metrics"]["live"]["unlinked_events"] == 2


def test_clarifais_region_bodies_are_stored_whole(api: Api) -> None:
    """Concepts beside regions, face attributes without data.concepts, a region naming nothing."""
    face = {"identity": {"concepts": [{"id": "xx", "value": 1.0}, {"id": "x2", "value": 0.0}]},
            "gender_appearance": {"concepts": [{"id": "male", "value": 1.0}]}}
    body = region_body("oooooooid", [{"region_info": {"bounding_box": BOX}, "data": {"face": face}},
                                     {"region_info": {"bounding_box": {**BOX, "top_row": 0.1}}}])
    body["input"]["data"]["concepts"] = [{"id": "matid2", "value": 1.0}, {"id": "lambo", "value": 0.0}]
    ok(post(api, body))
    (event,) = feedback(api)
    data = event["data"]
    assert data["kind"] == "regions" and [c["id"] for c in data["concepts"]] == ["matid2", "lambo"]
    with_face, bare = data["regions"]
    assert with_face["feedback"] == bare["feedback"] == "accurate"
    assert with_face["face"] == {"identity": [{"id": "xx", "name": "xx", "value": 1.0},
                                              {"id": "x2", "name": "x2", "value": 0.0}],
                                 "gender_appearance": [{"id": "male", "name": "male", "value": 1.0}]}
    assert bare["concepts"] == [] and bare["face"] == {}


def test_face_attributes_aggregate_like_concepts_of_their_region() -> None:
    from visionloop.learning.events import region_judgements

    normalized = {"kind": "regions", "regions": [
        {"feedback": "accurate", "box": [0.1, 0.1, 0.5, 0.5], "region_id": "r1",
         "concepts": [{"id": "face", "value": 1.0}],
         "face": {"age_appearance": [{"id": "30", "name": "30", "value": 1.0}]}}]}
    judged = region_judgements(normalized, {"r1": ((0.1, 0.1, 0.5, 0.5), 0.9)})
    assert [j.concept for j in judged] == ["face", "age_appearance:30"]


def test_unknown_search_click_is_stored_unlinked(api: Api) -> None:
    r = api.client.post("/v2/searches/feedback", json=search_body("searchID", "xyz"), headers=api.headers())
    ok(r)
    (event,) = feedback(api)
    assert event["unlinked"] is True and event["search_id"] is None and event["rank"] is None
    assert event["data"]["unlinked"] == {"search_id": "searchID", "input_id": "xyz"}


def test_embedding_model_still_takes_no_feedback(api: Api) -> None:
    assert status(post(api, concept_body("oooooooid", [{"id": "dog"}]), model=EMBED.id))[:2] == (400, 21202)


class TestRequireLink:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"fetch_allow_hosts": "127.0.0.1", "feedback_require_link": True}

    def test_unknown_ids_are_refused_as_before(self, api: Api) -> None:
        r = post(api, concept_body("oooooooid", [{"id": "dog"}]))
        assert status(r)[:2] == (404, 11101) and "output 'oooooooid' does not exist" in status(r)[2]
        r = post(api, region_body("oooooooid", [region(BOX, "accurate", [{"id": "face"}])]), model=FACE.id)
        assert status(r)[:2] == (404, 11101)
        r = api.client.post("/v2/searches/feedback", json=search_body("searchID", "xyz"), headers=api.headers())
        assert status(r)[:2] == (404, 11101)
        assert feedback(api) == []


def test_a_click_on_a_known_search_keeps_its_checks(api: Api) -> None:
    r = api.post("/inputs", {"inputs": [{"id": name, "data": {"image": {"base64": b64(photo(name))}}}
                                        for name in ("chelsea", "coffee")]})
    assert r.json()["status"]["code"] == 10000, r.text
    search = api.post("/searches", {"query": {"ands": [{"output": {"input": {"id": "chelsea"}}}]},
                                    "pagination": {"page": 1, "per_page": 1}}).json()
    r = api.client.post("/v2/searches/feedback", json=search_body(search["id"], "not-a-hit"), headers=api.headers())
    assert status(r)[:2] == (404, 30102)
    assert feedback(api) == []


@pytest.mark.parametrize("field", ["id", "feedback_info.output_id", "feedback_info.end_user_id",
                                   "feedback_info.session_id", "data.concepts[0].id", "data.concepts[0].name"])
def test_a_nul_in_a_text_field_is_refused_naming_it(api: Api, field: str) -> None:
    """PostgreSQL can neither store nor look up text with NUL: refused as invalid, never a 500."""
    body = concept_body("oooooooid", [{"id": "dog", "name": "dog"}], input_id="bb")
    node: Any = body["input"]
    *parents, last = field.replace("[0]", ".0").split(".")
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    node[last] = "a\x00b"
    r = post(api, body)
    assert (r.status_code, r.json()["status"]["code"]) == (400, 11102), r.text
    assert r.json()["status"]["details"] == f"input.{field}: must not contain NUL characters"
    assert feedback(api) == []


@pytest.mark.parametrize("field", ["id", "feedback_info.search_id", "feedback_info.end_user_id"])
def test_a_nul_in_a_click_is_refused_naming_it(api: Api, field: str) -> None:
    body = search_body("searchID", "hit")
    node: Any = body["input"]
    *parents, last = field.split(".")
    for key in parents:
        node = node[key]
    node[last] = "a\x00b"
    r = api.client.post("/v2/searches/feedback", json=body, headers=api.headers())
    assert (r.status_code, r.json()["status"]["code"]) == (400, 11102), r.text
    assert r.json()["status"]["details"] == f"input.{field}: must not contain NUL characters"
