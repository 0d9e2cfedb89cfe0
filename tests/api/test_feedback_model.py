"""Prediction feedback through HTTP: concepts and regions, every rule, every refusal, the seed's bodies."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.feedback_support import (
    EMBED,
    FACE,
    GENERAL,
    LOGO,
    LOGO_BASE_VERSION,
    RED_PNG_B64,
    WIRE_DIR,
    concept_body,
    feedback,
    predict,
    region,
    region_body,
    status,
)
from tests.helpers import Api, b64, photo, png_bytes
from visionloop.core import VisionLoop
from visionloop.store.tables import Concept, FeedbackEvent, ModelVersion

SEED = json.loads((Path(__file__).resolve().parents[1] / "data" / "feedback_seed.json").read_text())


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """These tests hold feedback to its output or search (VISIONLOOP_FEEDBACK_REQUIRE_LINK=1, the
    refusals as they were); tests/api/test_feedback_unlinked.py covers the default."""
    return {"fetch_allow_hosts": "127.0.0.1", "feedback_require_link": True}


@pytest.fixture
def cat(api: Api) -> dict:
    """A real prediction of the general model on a real cat photo, predicted with input id 'kitty'."""
    return predict(api, GENERAL, photo("chelsea"), input_id="kitty")


@pytest.fixture
def faces(api: Api) -> dict:
    out = predict(api, FACE, photo("astronaut"), input_id="astronaut")
    assert out["data"]["regions"], "the face model should find the astronaut's face"
    return out


def post(api: Api, body: Any, model: str = GENERAL, version: str | None = None) -> Any:
    path = f"/models/{model}" + (f"/versions/{version}" if version else "") + "/feedback"
    return api.post(path, body)


def ok(r: Any) -> None:
    assert r.status_code == 200, r.text
    assert r.json() == {"status": {"code": 10000, "description": "Ok"}}


def stored(core: VisionLoop) -> int:
    with core.db.session() as s:
        return len(list(s.scalars(select(FeedbackEvent.seq))))


# -- the seed's own examples ------------------------------------------------------------------------
def test_vendored_seed_matches_the_shared_captures() -> None:
    if not WIRE_DIR.is_dir():
        pytest.skip("../shared/wire is not beside the repository")
    for name, requests in SEED.items():
        captured = [r for r in json.loads((WIRE_DIR / name).read_text()) if r["path"].endswith("/feedback")]
        assert [r["seq"] for r in captured] == [r["seq"] for r in requests]
        for mine, theirs in zip(requests, captured):
            assert mine.get("body") == theirs.get("body") and mine.get("body_raw") == theirs.get("body_raw")


@pytest.mark.parametrize("capture", sorted(SEED))
def test_seed_examples_work_with_real_outputs_and_searches(api: Api, core: VisionLoop, capture: str) -> None:
    """Every captured feedback request (curl, js, py2, grpc JSON), with the ids of a real predict/search."""
    requests = SEED[capture]
    (input_id,) = {r["body"]["input"]["id"] for r in requests if r.get("body")}
    r = api.post("/inputs", {"inputs": [{"id": input_id, "data": {"image": {"base64": RED_PNG_B64},
                                                                  "concepts": [{"id": "seed-color"}]}}]})
    assert r.status_code == 200, r.text
    # The Python client cannot send an input id with predict: it names the stored input afterwards.
    predicted_id = None if capture.startswith("py2") else input_id
    outputs = {GENERAL: predict(api, GENERAL, image_b64=RED_PNG_B64, input_id=predicted_id)["id"],
               LOGO: predict(api, LOGO, image_b64=RED_PNG_B64, input_id=predicted_id)["id"]}
    found = api.post("/searches", {"query": {"ands": [{"input": {"data": {"concepts": [{"id": "seed-color"}]}}}]}})
    search_id = found.json()["id"]
    assert input_id in [h["input"]["id"] for h in found.json()["hits"]]

    accepted = set()
    for req in requests:
        path = req["path"].replace("/apps/selftest-app/", f"/apps/{api.app_id}/")
        model = next((m for m in outputs if f"/models/{m}/" in path), None)
        headers = {"auth": api.headers(), "none": {}, "wrong": {"Authorization": "Key wrong-key"}}[
            {"ok": "auth"}.get(req["auth"], req["auth"])]
        if "body_raw" in req:  # the seed's curl region body has a trailing comma: not JSON
            old = json.loads(req["body_raw"].replace(",\n      }", "\n      }"))["input"]["feedback_info"]["output_id"]
            content = req["body_raw"].replace(old, outputs[LOGO]).encode()
        else:
            body = req["body"]
            info = body["input"]["feedback_info"]
            if model:
                info["output_id"] = outputs[model]
            else:
                info["search_id"] = search_id
            content = json.dumps(body).encode()
        r = api.client.request("POST", path, content=content, headers={**headers, "Content-Type": "application/json"})
        expected = req["response_status"]
        assert r.status_code == expected, (req["seq"], r.text)
        code = r.json()["status"]["code"]
        if expected == 200:
            assert code == 10000
            accepted.add((model, json.dumps(body, sort_keys=True)))
        elif expected == 400:
            assert code == 11100 and "not valid JSON" in r.json()["status"]["details"], r.text
        else:
            assert code == 11009  # no key, or one no app has
    events = feedback(api)
    assert len(events) == len(accepted)  # the app-scoped repeats of a body are retries: stored once
    assert {e["event_type"] for e in events} <= {"annotation", "search_click"}
    # new concept ids named by the clients became app concepts
    assert api.get("/concepts/ai_8S2Vq3cR").status_code == 200
    assert api.get("/concepts/ai_TG4GHlnf").status_code == 200
    clicks = [e for e in events if e["event_type"] == "search_click"]
    assert clicks and all(e["rank"] >= 1 and e["input_id"] == input_id for e in clicks)
    concepts = next(e for e in events if e["model_id"] == GENERAL)["data"]
    assert [(c["id"], c["value"]) for c in concepts["concepts"]] == [("ai_8S2Vq3cR", 1.0), ("ai_mFqxrph2", 0.0)]
    assert concepts["input_id"] == input_id and concepts["image"] == {"url": "https://samples.clarifai.com/dog.tiff"}
    if capture == "py2.json":
        four = next(e for e in events if e["model_id"] == LOGO and len(e["data"]["regions"]) == 4)["data"]
        assert [r["feedback"] for r in four["regions"]] == ["accurate", "misplaced", "not_detected", "false_positive"]
        assert four["regions"][0]["box"] == [0.0, 0.1, 0.1, 0.2]  # the omitted top_row is 0
        assert [r["concepts"][0]["value"] for r in four["regions"]] == [1.0, 1.0, 1.0, 0.0]
        on_version = [e for e in events if e["model_id"] == LOGO and len(e["data"]["regions"]) == 1]
        assert on_version[0]["version_id"] == LOGO_BASE_VERSION


# -- concept feedback -------------------------------------------------------------------------------
def test_concepts_by_id_name_app_concept_or_new(api: Api, core: VisionLoop, cat: dict) -> None:
    api.post("/concepts", {"concepts": [{"id": "my-pet", "name": "Pet"}]})
    ok(post(api, concept_body(cat["id"], [
        {"id": "n02121808", "value": True},           # a model concept by id
        {"id": "dog", "value": False},                 # a model concept by its name
        {"name": "Tabby Cat", "value": 1.0},           # by name, any case
        {"id": "pet", "value": 1},                     # an app concept by name
        {"id": "laborador_retriever", "value": True},  # new: created in the app
    ], input_id="kitty")))
    (event,) = feedback(api)
    assert [(c["id"], c["value"], c["source"]) for c in event["data"]["concepts"]] == [
        ("n02121808", 1.0, "model"), ("n02084071", 0.0, "model"), ("n02123045", 1.0, "model"),
        ("my-pet", 1.0, "app"), ("laborador_retriever", 1.0, "new")]
    assert event["output_id"] == cat["id"] and event["model_id"] == GENERAL and event["input_id"] == "kitty"
    assert event["version_id"] == cat["model"]["model_version"]["id"]
    assert event["end_user_id"] == "user-1" and event["session_id"] == "session-1"
    assert api.get("/concepts/laborador_retriever").json()["concept"]["name"] == "laborador_retriever"
    # raw body kept as sent
    assert event["raw"]["input"]["data"]["concepts"][4] == {"id": "laborador_retriever", "value": True}


def test_a_new_concept_may_be_named_in_any_script(api: Api, core: VisionLoop, cat: dict) -> None:
    """New concepts follow POST /v2/concepts' id rule, not the ASCII rule of input ids."""
    ok(post(api, concept_body(cat["id"], [{"id": "猫", "value": True}, {"name": "chat tigré", "value": True}])))
    assert [(c["id"], c["source"]) for c in feedback(api)[0]["data"]["concepts"]] == [("猫", "new"),
                                                                                       ("chat tigré", "new")]
    assert api.get("/concepts/猫").json()["concept"]["name"] == "猫"
    for bad, field in (({"id": "a/b"}, "id"), ({"name": "   "}, "name"), ({"id": "x" * 65}, "id")):
        r = post(api, concept_body(cat["id"], [bad]))
        assert status(r)[:2] == (400, 11102), r.text
        assert status(r)[2].startswith(f"input.data.concepts[0].{field}: ") and "new one" in status(r)[2], r.text
    assert stored(core) == 1


def test_a_new_concept_named_while_a_namesake_was_created_is_that_namesake(api: Api, cat: dict,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent requests resolve before either writes (on PostgreSQL, in other processes too): 16 at
    once naming 'Tabby', 'tabby', 'TABBY' created several concepts. The write looks again, under a lock."""
    import visionloop.services.feedback.concepts as resolving

    api.post("/concepts", {"concepts": [{"id": "tabby", "name": "tabby"}]})  # created by 'another request'
    monkeypatch.setattr(resolving, "_app_concepts", lambda *_: [])  # resolved before it existed
    ok(post(api, concept_body(cat["id"], [{"name": "Tabby", "value": True}, {"id": "dog", "value": False}])))
    assert [(c["id"], c["source"]) for c in feedback(api)[0]["data"]["concepts"]] == [("tabby", "app"),
                                                                                       ("n02084071", "model")]
    assert api.get("/concepts/Tabby").status_code == 404


def test_app_concept_names_match_whatever_their_letters(api: Api, core: VisionLoop, cat: dict) -> None:
    """Names match case-insensitively beyond ASCII too, alike on every backend (SQLite's lower()
    folds only A-Z: "ÉCLAIR" would not have found "Éclair" there)."""
    api.post("/concepts", {"concepts": [{"id": "eclair", "name": "Éclair"}, {"id": "strasse", "name": "Straße"}]})
    ok(post(api, concept_body(cat["id"], [{"id": "ÉCLAIR", "value": True}, {"name": "STRASSE", "value": False}])))
    (event,) = feedback(api)
    assert [(c["id"], c["value"], c["source"]) for c in event["data"]["concepts"]] == [
        ("eclair", 1.0, "app"), ("strasse", 0.0, "app")]


def test_two_references_to_one_concept_must_agree(api: Api, core: VisionLoop, cat: dict) -> None:
    r = post(api, concept_body(cat["id"], [{"id": "dog", "value": True}, {"id": "n02084071", "value": False}]))
    assert status(r)[:2] == (400, 11102) and "input.data.concepts[1]" in status(r)[2]
    ok(post(api, concept_body(cat["id"], [{"id": "dog", "value": True}, {"id": "n02084071", "value": 1.0}])))
    assert [c["id"] for c in feedback(api)[0]["data"]["concepts"]] == ["n02084071"]


def test_an_app_concept_and_a_model_concept_of_one_name_must_agree(api: Api, cat: dict) -> None:
    """'cat' is the app's own concept here (annotated once) and 'Cat' the model's n02121808: one word."""
    api.post("/concepts", {"concepts": [{"id": "cat", "name": "cat"}]})
    r = post(api, concept_body(cat["id"], [{"id": "cat", "value": True}, {"name": "Cat", "value": False}]))
    assert status(r)[:2] == (400, 11102) and status(r)[2].startswith("input.data.concepts[1]"), r.text
    assert "opposite value" in status(r)[2] and feedback(api) == []
    ok(post(api, concept_body(cat["id"], [{"id": "cat", "value": True}, {"name": "Cat", "value": True}])))
    assert [(c["id"], c["source"]) for c in feedback(api)[0]["data"]["concepts"]] == [("cat", "app"),
                                                                                       ("n02121808", "model")]


def test_version_path(api: Api, core: VisionLoop, cat: dict) -> None:
    base = cat["model"]["model_version"]["id"]
    ok(post(api, concept_body(cat["id"], [{"id": "cat"}]), version=base))
    r = post(api, concept_body(cat["id"], [{"id": "cat"}]), version="f" * 32)
    assert status(r)[:2] == (404, 21200)
    # a second version of the general model, for this app: its outputs are not the base version's
    with core.db.transaction() as s:
        s.add(ModelVersion(id="v2" + "0" * 30, model_pk=core.models.get("app-a", GENERAL).model.pk, app_id="app-a",
                           parent_id=base, status_code=21100, params={"kind": "base"}))
    other = predict(api, GENERAL, png_bytes(), version="v2" + "0" * 30)
    r = post(api, concept_body(other["id"], [{"id": "cat"}]), version=base)
    assert status(r)[:2] == (400, 11102)
    assert f"version {'v2' + '0' * 30!r} of this model, not by version {base!r}" in status(r)[2]
    ok(post(api, concept_body(other["id"], [{"id": "cat"}])))  # the model path takes any version's output
    assert [e["version_id"] for e in feedback(api)] == [base, "v2" + "0" * 30]
    assert [e["version_id"] for e in feedback(api, version_id=base)] == [base]


def test_app_scoped_path(api: Api, cat: dict) -> None:
    r = api.client.post(f"/v2/users/me/apps/app-a/models/{GENERAL}/feedback",
                        json=concept_body(cat["id"], [{"id": "cat"}]), headers=api.headers())
    ok(r)
    r = api.client.post(f"/v2/users/me/apps/app-b/models/{GENERAL}/feedback",
                        json=concept_body(cat["id"], [{"id": "cat"}]), headers=api.headers())
    assert status(r)[:2] == (404, 11101)


# -- what the output says decides ------------------------------------------------------------------
def test_output_must_exist_in_the_app_and_belong_to_the_model(api: Api, other_api: Api, core: VisionLoop,
                                                              cat: dict, faces: dict) -> None:
    r = post(api, concept_body("0" * 32, [{"id": "cat"}]))
    assert status(r) == (404, 11101, "input.feedback_info.output_id: output '00000000000000000000000000000000' "
                                     "does not exist in this app (use the id of an output returned by predict)")
    assert r.json()["status"]["description"] == "Output does not exist"
    r = post(other_api, concept_body(cat["id"], [{"id": "cat"}]))  # another app's output is unknown there
    assert status(r)[:2] == (404, 11101)
    r = post(api, region_body(faces["id"], [region({"top_row": 0.1, "left_col": 0.1, "bottom_row": 0.2,
                                                    "right_col": 0.2}, "not_detected")]), model=LOGO)
    assert status(r)[:2] == (400, 11102)
    assert f"output {faces['id']!r} was predicted by model {FACE!r} (face-v1.3), not by {LOGO!r}" in status(r)[2]
    assert stored(core) == 0


def test_input_id_must_name_the_outputs_image(api: Api, core: VisionLoop, cat: dict) -> None:
    r = post(api, concept_body(cat["id"], [{"id": "cat"}], input_id="someone-else"))
    assert status(r)[:2] == (400, 30104) and status(r)[2].startswith("input.id:")
    api.add_image("red-one")  # a stored input with another image
    r = post(api, concept_body(cat["id"], [{"id": "cat"}], input_id="red-one"))
    assert status(r)[:2] == (400, 30104)
    # a stored input holding the very same bytes is the same image (the Python client's way)
    api.post("/inputs", {"inputs": [{"id": "stored-cat", "data": {"image": {"base64": b64(photo("chelsea"))}}}]})
    transient = predict(api, GENERAL, photo("chelsea"))
    ok(post(api, concept_body(transient["id"], [{"id": "cat"}], input_id="stored-cat")))
    ok(post(api, concept_body(cat["id"], [{"id": "cat"}])))  # no input id at all: the output's input
    assert [e["input_id"] for e in feedback(api)] == ["stored-cat", "kitty"]


def test_the_image_is_only_named_never_fetched(api: Api, core: VisionLoop, cat: dict,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fetch(*_: Any, **__: Any) -> bytes:
        raise AssertionError("feedback must never fetch the image")

    monkeypatch.setattr(core.fetcher, "fetch", no_fetch)
    url = "http://192.0.2.1/unreachable-dog.tiff"
    ok(post(api, concept_body(cat["id"], [{"id": "dog", "value": False}], image={"url": url})))
    ok(post(api, concept_body(cat["id"], [{"id": "cat"}], image={"base64": b64(photo("chelsea"))})))
    first, second = feedback(api)
    assert first["data"]["image"] == {"url": url}
    assert second["data"]["image"] == {"base64_sha256": hashlib.sha256(photo("chelsea")).hexdigest()}
    assert second["raw"]["input"]["data"]["image"]["base64"]["omitted_chars"] > 1000  # not stored in full
    r = post(api, concept_body(cat["id"], [{"id": "cat"}], image={"base64": "%%% not base64"}))
    assert status(r)[:2] == (400, 30104) and "input.data.image.base64" in status(r)[2]
    # another image's bytes say the feedback is about another image, as another input id would
    r = post(api, concept_body(cat["id"], [{"id": "cat", "value": False}], image={"base64": b64(png_bytes())}))
    assert status(r)[:2] == (400, 30104) and "predicted on another image" in status(r)[2]
    assert len(feedback(api)) == 2


# -- model kinds ------------------------------------------------------------------------------------
def test_feedback_must_fit_the_model(api: Api, core: VisionLoop, cat: dict, faces: dict) -> None:
    emb = predict(api, EMBED, photo("chelsea"))
    r = post(api, concept_body(emb["id"], [{"id": "cat"}]), model=EMBED)
    assert status(r)[:2] == (400, 21202) and "embedding model" in status(r)[2]
    r = post(api, region_body(cat["id"], [region({"top_row": 0.1, "left_col": 0.1, "bottom_row": 0.5,
                                                  "right_col": 0.5})]))
    assert status(r)[:2] == (400, 21202) and status(r)[2].startswith("input.data.regions: model")
    r = post(api, concept_body(faces["id"], [{"id": "face"}]), model=FACE)
    assert status(r)[:2] == (400, 21202) and status(r)[2].startswith("input.data.concepts: model")
    r = post(api, concept_body(cat["id"], [{"id": "cat"}]), model="no-such-model")
    assert status(r)[:2] == (404, 21200)
    assert stored(core) == 0


# -- regions ----------------------------------------------------------------------------------------
def test_region_feedback_ties_corrections_to_predicted_regions(api: Api, faces: dict) -> None:
    predicted = faces["data"]["regions"][0]
    box = predicted["region_info"]["bounding_box"]
    shifted = {"top_row": box["top_row"] + 0.02, "left_col": box["left_col"] + 0.02,
               "bottom_row": min(1.0, box["bottom_row"] + 0.1), "right_col": min(1.0, box["right_col"] + 0.1)}
    ok(post(api, region_body(faces["id"], [
        region(shifted, "misplaced"),                                            # tied by IoU, corrected box
        region({"top_row": 0.8, "left_col": 0.8, "bottom_row": 0.95, "right_col": 0.95}, 2),  # not_detected
        region({"top_row": 0.6, "left_col": 0.0, "bottom_row": 0.7, "right_col": 0.1}, "false_positive",
               concepts=[]),                                                     # nothing predicted there
    ], input_id="astronaut"), model=FACE))
    ok(post(api, region_body(faces["id"], [region(None, None, region_id=predicted["id"])], session_id="s2"),
            model=FACE))
    first, second = feedback(api, model_id=FACE)
    misplaced, missed, fp = first["data"]["regions"]
    assert (misplaced["feedback"], misplaced["region_id"], misplaced["matched_by"]) == ("misplaced", predicted["id"],
                                                                                       "iou")
    assert 0 < misplaced["iou"] < 1 and misplaced["box"] == [shifted[k] for k in
                                                             ("top_row", "left_col", "bottom_row", "right_col")]
    assert (missed["feedback"], missed["region_id"], missed["concepts"][0]["id"]) == ("not_detected", None, "face")
    assert (fp["feedback"], fp["region_id"], fp["concepts"]) == ("false_positive", None, [])
    (accurate,) = second["data"]["regions"]  # by id, without a box: the predicted box
    assert (accurate["feedback"], accurate["region_id"], accurate["matched_by"]) == ("accurate", predicted["id"], "id")
    assert accurate["box"] == [box[k] for k in ("top_row", "left_col", "bottom_row", "right_col")]


def test_region_refusals(api: Api, core: VisionLoop, faces: dict) -> None:
    pid = faces["data"]["regions"][0]["id"]
    good = {"top_row": 0.1, "left_col": 0.1, "bottom_row": 0.2, "right_col": 0.2}
    cases = [
        ([region(None, None, region_id="no-such-region")], "input.data.regions[0].id", "has no region"),
        ([region(None, None, region_id=pid), region(None, "false_positive", region_id=pid)],
         "input.data.regions[1]", "cannot be both accurate and false_positive"),
        ([region(good), region(good, "false_positive")], "input.data.regions[1]", "cannot be both"),
        ([region(None, None, region_id=pid), region(None, None, region_id=pid, concepts=[{"id": "dog"}])],
         "input.data.regions[1].id", "already has feedback"),
        ([region({**good, "top_row": 1.2})], "input.data.regions[0].region_info.bounding_box.top_row", "[0, 1]"),
        ([region({**good, "top_row": 0.5})], "input.data.regions[0].region_info.bounding_box", "less than bottom_row"),
        ([region({**good, "left_col": 0.5})], "input.data.regions[0].region_info.bounding_box", "less than right_col"),
        ([region(good, "sloppy")], "input.data.regions[0].region_info.feedback", "unknown value 'sloppy'"),
        ([region(None, "misplaced", region_id=pid)], "input.data.regions[0].region_info.bounding_box",
         "corrected box"),
        ([region(good, "not_detected", region_id=pid)], "input.data.regions[0].id", "cannot name"),
        ([region(good, concepts=[{"id": "face", "value": 0.3}])], "input.data.regions[0].data.concepts[0].value",
         "true/false"),
        ([], "input.data.regions", "empty"),
    ]
    for regions, field, reason in cases:
        r = post(api, region_body(faces["id"], regions), model=FACE)
        code, details = status(r)[1:]
        assert r.status_code == 400 and code == 11102, (field, r.text)
        assert details.startswith(field + ":") and reason in details, (field, details)
    assert stored(core) == 0


# -- refusals of every kind store nothing ------------------------------------------------------------
@pytest.mark.parametrize("change,field,reason", [
    ({"event_type": None}, "input.feedback_info.event_type", "is required"),
    ({"event_type": "search_click"}, "input.feedback_info.event_type", "does not fit this endpoint"),
    ({"event_type": 1}, "input.feedback_info.event_type", "does not fit this endpoint"),
    ({"event_type": "like"}, "input.feedback_info.event_type", "unknown value 'like'"),
    ({"output_id": None}, "input.feedback_info.output_id", "is required"),
    ({"output_id": 17}, "input.feedback_info.output_id", "must be the id of the prediction output"),
    ({"end_user_id": {"id": 1}}, "input.feedback_info.end_user_id", "must be a string"),
    ({"concepts": []}, "input.data.concepts", "empty"),
    ({"concepts": "cat"}, "input.data.concepts", "must be a list"),
    ({"concepts": [{"id": "cat", "value": "true"}]}, "input.data.concepts[0].value", "true/false"),
    ({"concepts": [{"value": True}]}, "input.data.concepts[0]", "needs an id or a name"),
])
def test_invalid_model_feedback(api: Api, core: VisionLoop, cat: dict, change: dict, field: str, reason: str) -> None:
    body = concept_body(cat["id"], [{"id": "brand-new-concept"}, {"id": "cat"}])
    for key, value in change.items():
        target = body["input"]["data"] if key == "concepts" else body["input"]["feedback_info"]
        if value is None:
            target.pop(key)
        else:
            target[key] = value
    r = post(api, body)
    assert r.status_code == 400 and r.json()["status"]["code"] == 11102, r.text
    details = r.json()["status"]["details"]
    assert details.startswith(field + ":") and reason in details, details
    assert stored(core) == 0
    with core.db.session() as s:
        assert s.get(Concept, ("app-a", "brand-new-concept")) is None  # nothing stored from a refusal


@pytest.mark.parametrize("content,code", [
    (b'{"input": {"data": {"concepts": [{"id": "cat"}]},}}', 11100),
    (b"", 11100),
    (b"[1, 2]", 11100),
    (b'{"input": "cat"}', 11102),
    (b'{"input": {"data": {"regions": [{"region_info": {"bounding_box": {"top_row": NaN}}}]}}}', 11100),
])
def test_malformed_bodies(api: Api, core: VisionLoop, content: bytes, code: int) -> None:
    r = api.client.post(f"/v2/models/{GENERAL}/feedback", content=content,
                        headers={**api.headers(), "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["status"]["code"] == code, r.text
    assert stored(core) == 0


def test_feedback_scope_is_required(core: VisionLoop, client: Any, cat: dict) -> None:
    from tests.conftest import make_api

    no_feedback = make_api(core, client, "app-a", ("predict", "inputs"))
    r = post(no_feedback, concept_body(cat["id"], [{"id": "cat"}]))
    assert status(r)[:2] == (403, 11007)
    only_feedback = make_api(core, client, "app-a", ("feedback",))
    ok(post(only_feedback, concept_body(cat["id"], [{"id": "cat"}])))


# -- durable, deduplicated, free, throttled ----------------------------------------------------------
def test_retries_are_stored_once(api: Api, core: VisionLoop, cat: dict) -> None:
    body = concept_body(cat["id"], [{"id": "cat", "value": True}, {"id": "dog", "value": False}])
    for _ in range(3):
        ok(post(api, body))
    # the same statement as another client writes it (1.0/0.0, names vs ids, other order) is a retry too
    ok(post(api, concept_body(cat["id"], [{"id": "n02084071", "value": 0.0}, {"name": "cat", "value": 1.0}])))
    assert stored(core) == 1
    ok(post(api, concept_body(cat["id"], [{"id": "cat"}, {"id": "dog", "value": False}], session_id="other")))
    ok(post(api, concept_body(cat["id"], [{"id": "cat"}, {"id": "dog", "value": False}], end_user_id="user-2")))
    ok(post(api, concept_body(cat["id"], [{"id": "cat", "value": False}])))  # a different statement
    assert stored(core) == 4
    # outside the window the same body is new feedback (age the stored events instead of waiting)
    with core.db.transaction() as s:
        s.execute(update(FeedbackEvent).values(created_at=FeedbackEvent.created_at - core.feedback.log.dedup_window))
    ok(post(api, body))
    assert stored(core) == 5


def test_concurrent_identical_retries_are_stored_once(api: Api, core: VisionLoop, cat: dict) -> None:
    body = concept_body(cat["id"], [{"id": "brand-new"}, {"id": "cat"}])
    answers: list[int] = []

    def send() -> None:
        answers.append(post(api, body).json()["status"]["code"])

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [10000] * 8
    assert stored(core) == 1


def test_accepted_feedback_is_committed_before_the_answer(api: Api, core: VisionLoop, cat: dict) -> None:
    from visionloop.store.db import Database

    ok(post(api, concept_body(cat["id"], [{"id": "cat"}])))
    fresh = Database(core.settings.db_url)  # another connection pool: sees only committed data
    try:
        with fresh.session() as s:
            assert len(list(s.scalars(select(FeedbackEvent.id)))) == 1
    finally:
        fresh.dispose()


def test_an_app_served_again_still_records_feedback(api: Api, core: VisionLoop, cat: dict) -> None:
    """Its lifespan's end shuts the feedback threads down; the app may be served again after it
    (tests and ASGI drivers do), and its feedback must still be recorded, not answered 10020."""
    from fastapi.testclient import TestClient

    from visionloop.http.app import create_app

    app = create_app(core.settings, core)
    body = concept_body(cat["id"], [{"id": "cat"}])
    for user in ("first-start", "second-start"):
        with TestClient(app) as client:
            ok(post(Api(client, api.key, api.app_id), {**body, "input": {**body["input"], "feedback_info": {
                **body["input"]["feedback_info"], "end_user_id": user}}}))
    ok(post(Api(TestClient(app), api.key, api.app_id), body))  # driven without its lifespan
    assert stored(core) == 3


def test_feedback_is_not_metered(core: VisionLoop, client: Any) -> None:
    core.apps.create_app("metered")
    _, secret = core.apps.create_key("metered", monthly_limit=1)
    api = Api(client, secret, "metered")
    out = predict(api, GENERAL, png_bytes())
    r = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(png_bytes())}}}]})
    assert status(r)[:2] == (429, 11006)  # the limit is used up ...
    used = core.usage.used("metered")
    for i in range(5):  # ... and feedback still flows, uncounted
        ok(post(api, concept_body(out["id"], [{"id": "cat", "value": bool(i % 2)}], session_id=f"s{i}")))
    assert core.usage.used("metered") == used and "feedback" not in core.usage.by_op("metered")


class TestRateLimit:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"fetch_allow_hosts": "127.0.0.1", "feedback_rate_limit": 0.5}  # bursts of 5 per key

    def test_floods_are_throttled_with_429(self, api: Api, core: VisionLoop, client: Any, cat: dict) -> None:
        from tests.conftest import make_api

        for i in range(5):
            ok(post(api, concept_body(cat["id"], [{"id": "cat"}], session_id=f"s{i}")))
        r = post(api, concept_body(cat["id"], [{"id": "cat"}], session_id="flood"))
        assert status(r)[:2] == (429, 11005) and "this API key" in status(r)[2]
        assert r.json()["status"]["description"] == "Making too many requests"
        assert stored(core) == 5  # nothing stored from the throttled request
        # the search feedback endpoint shares the limit; predict does not
        r = api.post("/searches/feedback", {"input": {"id": "x", "feedback_info": {"event_type": "search_click",
                                                                                 "search_id": "y"}}})
        assert status(r)[:2] == (429, 11005)
        predict(api, GENERAL, png_bytes())
        # another key of the same app has its own bucket (the app's is 5x larger)
        ok(post(make_api(core, client, "app-a"), concept_body(cat["id"], [{"id": "dog"}])))

    def test_two_processes_on_one_database_share_the_limit(self, api: Api, core: VisionLoop, cat: dict) -> None:
        """Behind a load balancer: requests alternate between two servers, and a key still gets its 5."""
        from fastapi.testclient import TestClient

        from visionloop.http.app import create_app

        other = VisionLoop(core.settings, core.runtime)
        try:
            with TestClient(create_app(other.settings, other), raise_server_exceptions=False) as second:
                servers = [api, Api(second, api.key, api.app_id)]
                for i in range(5):
                    ok(post(servers[i % 2], concept_body(cat["id"], [{"id": "cat"}], session_id=f"s{i}")))
                for i, server in enumerate(servers):
                    r = post(server, concept_body(cat["id"], [{"id": "cat"}], session_id=f"flood{i}"))
                    assert status(r)[:2] == (429, 11005) and "this API key" in status(r)[2], r.text
            assert stored(core) == 5
        finally:
            other.close()

    def test_a_lease_the_database_refuses_leaves_the_process_to_limit_alone(
            self, api: Api, core: VisionLoop, cat: dict, monkeypatch: pytest.MonkeyPatch) -> None:
        """Never a 500 from the limit: each request is accepted and stored, or refused with 11005."""
        from sqlalchemy.exc import OperationalError

        def down(*_: Any) -> None:
            raise OperationalError("UPDATE rate_buckets ...", {}, Exception("server closed the connection"))

        monkeypatch.setattr(core.feedback.limiter._shared, "lease", down)
        codes = [status(post(api, concept_body(cat["id"], [{"id": "cat"}], session_id=f"s{i}")))[:2]
                 for i in range(6)]
        assert codes == [(200, 10000)] * 5 + [(429, 11005)]  # this process's own bucket: bursts of 5
        assert stored(core) == 5


@pytest.mark.parametrize(("extra", "reason"), [
    ('"x": NaN', "NaN"),
    ('"x": 1e999', "input.x: the number 1e999 is beyond the range of a double"),  # Python reads it as inf
    ('"x": "\\udc00"', "input.x holds a lone UTF-16 surrogate"),
    ('"x": 1', "input.feedback_info.end_user_id holds a lone UTF-16 surrogate"),
    ('"x": ' + "[" * 5000 + "]" * 5000, "deeper than"),
])
def test_json_that_cannot_be_stored_faithfully_is_refused(api: Api, cat: dict, extra: str, reason: str) -> None:
    body = json.dumps(concept_body(cat["id"], [{"id": "cat"}])).replace('"input": {', '"input": {%s, ' % extra, 1)
    if "end_user_id" in reason:  # a field that is stored and looked up: it failed in the database
        body = body.replace('"user-1"', '"user-\\ud800"')
    r = api.client.post(f"/v2/models/{GENERAL}/feedback", content=body.encode(),
                        headers={**api.headers(), "Content-Type": "application/json"})
    refused_as = 11102 if "number" in reason else 11100  # a field out of range, not malformed JSON
    assert status(r)[:2] == (400, refused_as) and reason in status(r)[2], r.text
    assert feedback(api) == []


def test_a_huge_body_is_refused_before_it_is_read(api: Api, core: VisionLoop, cat: dict) -> None:
    body = concept_body(cat["id"], [{"id": f"c{i}"} for i in range(1000)])
    body["input"]["padding"] = "x" * (1024 * 1024)
    r = post(api, body)
    assert status(r)[:2] == (400, 11102) and status(r)[2].startswith("body: a feedback body is at most")
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8)).save(buf, "PNG")
    assert len(b64(buf.getvalue())) > 1024 * 1024
    noise = predict(api, GENERAL, buf.getvalue())
    ok(post(api, concept_body(noise["id"], [{"id": "cat", "value": False}], image={"base64": b64(buf.getvalue())})))
    # an image's base64 does not count: it is stored as its length and digest only
    assert stored(core) == 1
