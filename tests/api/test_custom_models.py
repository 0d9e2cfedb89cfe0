"""An app's own concept models through HTTP: created over chosen concepts, trained from the app's
annotations and feedback, predicting only those concepts, seen by no other app."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from tests.helpers import Api, b64, photo, scene_variants, train
from visionloop import errors, status
from visionloop.core import VisionLoop
from visionloop.services.paging import Page

GENERAL = "aaa03c23b3724a16a56b629203edc62c"
PETS = {"model": {"id": "pets", "name": "Pets", "output_info": {
    "data": {"concepts": [{"id": "cat"}, {"id": "cup", "name": "Cup"}]},
    "output_config": {"concepts_mutually_exclusive": True, "closed_environment": False}}}}


def variants(name: str, n: int, seed: int) -> list[bytes]:
    return scene_variants(Image.open(io.BytesIO(photo(name))).convert("RGB"), n, seed, quality=85)


def model_body(model_id: Any = "pets", concepts: Any = ({"id": "cat"},), **fields: Any) -> dict[str, Any]:
    return {"model": {"id": model_id, "output_info": {"data": {"concepts": list(concepts)}}, **fields}}


def predict(api: Api, model: str, image: bytes, **config: Any) -> Any:
    body: dict[str, Any] = {"inputs": [{"data": {"image": {"base64": b64(image)}}}]}
    if config:
        body["model"] = {"output_info": {"output_config": config}}
    return api.post(f"/models/{model}/outputs", body)


def annotate(api: Api, prefix: str, images: list[bytes], present: str, absent: str) -> None:
    r = api.post("/inputs", {"inputs": [
        {"id": f"{prefix}-{i}", "data": {"image": {"base64": b64(data)}, "concepts": [
            {"id": present, "value": True}, {"id": absent, "value": False}]}} for i, data in enumerate(images)]})
    assert r.status_code == 200, r.text


def test_a_created_model_lists_its_concepts_and_is_not_yet_trained(api: Api, other_api: Api) -> None:
    api.post("/concepts", {"concepts": [{"id": "cat", "name": "Kitty"}]})
    r = api.client.post(f"/v2/users/me/apps/{api.app_id}/models", json=PETS, headers=api.headers())
    assert r.status_code == 200, r.text
    assert r.json()["status"]["code"] == status.SUCCESS
    model = r.json()["model"]
    assert (model["id"], model["name"], model["model_type_id"]) == ("pets", "Pets", "concept")
    info = model["output_info"]
    assert [(c["id"], c["name"]) for c in info["data"]["concepts"]] == [("cat", "Kitty"), ("cup", "Cup")]
    assert info["output_config"] == {"concepts_mutually_exclusive": True, "closed_environment": False}
    assert model["model_version"]["status"] == {"code": 21102, "description": "Model is not yet trained"}

    got = api.get("/models/pets").json()["model"]
    assert got["model_version"] == model["model_version"] and got["output_info"]["output_config"] == info["output_config"]
    assert api.get("/models/pets/output_info").json()["model"]["output_info"]["data"] == info["data"]
    assert "pets" in [m["id"] for m in api.get("/models", params={"per_page": 100}).json()["models"]]
    assert api.get("/concepts/cup").json()["concept"]["name"] == "Cup"  # created, as annotations create them

    # another app sees nothing of it, and may have its own "pets"
    assert "pets" not in [m["id"] for m in other_api.get("/models", params={"per_page": 100}).json()["models"]]
    assert other_api.get("/models/pets").json()["status"]["code"] == status.MODEL_DOES_NOT_EXIST
    assert other_api.get("/concepts/cup").status_code == 404
    for path in ("/models/pets/output_info", "/models/pets/versions", f"/models/pets/versions/{model['model_version']['id']}"):
        assert other_api.get(path).json()["status"]["code"] == status.MODEL_DOES_NOT_EXIST, path
    assert other_api.post("/models", PETS).status_code == 200


@pytest.mark.parametrize(("body", "field"), [
    (model_body(None), "model.id"),
    (model_body(""), "model.id"),
    (model_body("a\\b"), "model.id"),
    (model_body(GENERAL), "model.id"),          # a built-in model's id
    (model_body("general-v1.3"), "model.id"),   # and its name
    (model_body("taken"), "model.id"),          # the app's own model
    (model_body(name="general-v1.3"), "model.name"),  # named like a built-in, it took that name over
    (model_body(name=GENERAL), "model.name"),
    (model_body(name="taken"), "model.name"),   # the app's own model's id (and name)
    (model_body(name="x" * 256), "model.name"),
    (model_body(concepts=[{"id": f"c{i}"} for i in range(201)]), "model.output_info.data.concepts"),
    (model_body(concepts=[{"id": "new-one"}, {"name": "no id"}]), "model.output_info.data.concepts[1].id"),
    (model_body(concepts=[{"id": "new-one"}, {"id": "a/b"}]), "model.output_info.data.concepts[1].id"),
    (model_body(concepts=[{"id": "new-one"}, {"id": "new-one"}]), "model.output_info.data.concepts[1].id"),
    (model_body(concepts=[{"id": "new-one", "name": "n" * 256}]), "model.output_info.data.concepts[0].name"),
])
def test_a_bad_model_is_refused_and_nothing_is_written(api: Api, body: dict[str, Any], field: str) -> None:
    assert api.post("/models", model_body("taken")).status_code == 200
    before = api.get("/models", params={"per_page": 100}).json()["models"]
    r = api.post("/models", body)
    assert r.status_code == 400, r.text
    assert r.json()["status"]["code"] == status.CONN_INVALID_REQUEST
    assert r.json()["status"]["details"].startswith(field + ":"), r.json()["status"]
    assert api.get("/models", params={"per_page": 100}).json()["models"] == before
    assert api.get("/concepts/new-one").status_code == 404


def test_a_model_body_of_the_wrong_shape_is_refused_naming_the_field(api: Api) -> None:
    for body in ({}, {"model": "pets"}, {"model": {"id": 3}}):
        r = api.post("/models", body)
        assert (r.status_code, r.json()["status"]["code"]) == (400, status.CONN_INVALID_REQUEST), r.text
        assert r.json()["status"]["details"].startswith("model"), r.text


def test_an_untrained_model_refuses_to_predict(api: Api) -> None:
    assert api.post("/models", PETS).status_code == 200
    r = predict(api, "pets", photo("chelsea"))
    assert r.status_code == 400 and r.json()["status"]["code"] == status.MODEL_INVALID_ARGUMENT, r.text
    assert "POST /v2/models/pets/versions" in r.json()["status"]["details"]
    version = train(api, "pets")  # no annotations yet
    assert version["status"]["code"] == status.MODEL_TRAINING_INSUFFICIENT_DATA, version
    assert api.get("/models/pets").json()["model"]["model_version"]["status"]["code"] == 21102


@pytest.mark.slow
def test_a_custom_model_learns_its_concepts_from_annotations_and_feedback(api: Api, other_api: Api) -> None:
    assert api.post("/models", PETS).status_code == 200
    annotate(api, "cat", variants("chelsea", 12, 1), "cat", "cup")
    annotate(api, "cup", variants("coffee", 12, 2), "cup", "cat")
    api.add_image("rocket-0", concepts=[{"id": "rocket", "value": True}])  # not a concept of the model

    version = train(api, "pets")
    assert version["status"]["code"] == status.MODEL_TRAINED, version
    info = version["visionloop"]
    assert info["kind"] == "concept_heads" and info["promoted"] is True, info
    assert info["trained_on"]["labels"] == 48  # 24 images x 2 concepts, nothing of "rocket"
    assert api.get("/models/pets").json()["model"]["model_version"]["id"] == version["id"]

    for scene, right, wrong in (("chelsea", "cat", "cup"), ("coffee", "cup", "cat")):
        for image in variants(scene, 3, 50):
            r = predict(api, "pets", image)
            assert r.status_code == 200, r.text
            out = r.json()["outputs"][0]
            scores = {c["id"]: c["value"] for c in out["data"]["concepts"]}
            assert set(scores) == {"cat", "cup"}, scores  # only the model's concepts, no ImageNet ones
            assert scores[right] > scores[wrong], (scene, scores)
    assert [c["name"] for c in out["data"]["concepts"]] == ["Cup", "cat"]
    cat = variants("chelsea", 1, 60)[0]
    assert [c["id"] for c in predict(api, "pets", cat, max_concepts=1).json()["outputs"][0]["data"]["concepts"]] \
        == ["cat"]
    assert [c["id"] for c in predict(api, "pets", cat, select_concepts=[{"id": "cup"}]).json()["outputs"][0][
        "data"]["concepts"]] == ["cup"]

    # feedback on its outputs is accepted and feeds the next version
    out = predict(api, "pets", cat).json()["outputs"][0]
    r = api.post("/models/pets/feedback", {"input": {"id": out["input"]["id"], "data": {
        "concepts": [{"id": "cat", "value": True}, {"id": "cup", "value": False}]}, "feedback_info": {
        "event_type": "annotation", "output_id": out["id"], "end_user_id": "u1"}}})
    assert r.status_code == 200, r.text
    again = train(api, "pets")
    assert again["status"]["code"] == status.MODEL_TRAINED and again["visionloop"]["trained_on"]["events"] == 1
    live = api.get(f"/models/pets/versions/{version['id']}/metrics").json()["model_version"]["metrics"]["live"]
    assert live["concepts"]["cat"]["n_pos"] == 1 and live["concepts"]["cup"]["n_neg"] == 1, live

    # another app cannot use it
    assert predict(other_api, "pets", cat).status_code == 404
    assert other_api.post("/models/pets/versions", {}).status_code == 404


def test_models_created_at_once_under_one_name_leave_one(core: VisionLoop) -> None:
    """On PostgreSQL, 16 concurrent creates of one name left 3 models of that name (check, then insert)."""
    from concurrent.futures import ThreadPoolExecutor

    from visionloop.services.models import NewConcept, NewModel

    core.apps.create_app("racing")

    def create(i: int) -> bool:
        try:
            core.models.create("racing", NewModel(f"m{i}", "Shared name", [NewConcept(f"c{i}", None)]))
            return True
        except errors.InvalidRequest:
            return False

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(create, range(16))) == 1
    assert [m.model.name for m in core.models.list("racing", Page(1, 100))].count("Shared name") == 1


def test_a_model_made_without_concepts_gets_them_by_patch_and_trains_only_then(api: Api) -> None:
    r = api.post("/models", {"model": {"id": "我的新模型"}})  # any language, as Clarifai took
    assert r.status_code == 200, r.text
    assert "data" not in r.json()["model"]["output_info"]  # no concepts yet: no empty data either
    r = api.post("/models/我的新模型/versions", {})
    assert r.status_code == 400 and r.json()["status"]["code"] == status.MODEL_INVALID_ARGUMENT, r.text
    patch = {"models": [{"id": "我的新模型", "output_info": {"data": {"concepts": [{"id": "cat"}, {"id": "dog"}]}}}],
             "action": "merge"}
    r = api.client.patch("/v2/models", json=patch, headers=api.headers())
    assert r.status_code == 200, r.text
    assert [c["id"] for c in r.json()["models"][0]["output_info"]["data"]["concepts"]] == ["cat", "dog"]
    remove = {**patch, "action": "remove",
              "models": [{"id": "我的新模型", "name": "renamed", "output_info": {
                  "data": {"concepts": [{"id": "dog"}]}, "output_config": {"closed_environment": True}}}]}
    model = api.client.patch("/v2/models", json=remove, headers=api.headers()).json()["models"][0]
    assert [c["id"] for c in model["output_info"]["data"]["concepts"]] == ["cat"]
    assert model["name"] == "renamed" and model["output_info"]["output_config"]["closed_environment"] is True
    r = api.client.patch("/v2/models", json={**patch, "action": "sideways"}, headers=api.headers())
    assert r.status_code == 400 and r.json()["status"]["details"].startswith("action:")


def test_a_model_id_with_a_slash_is_reached_with_it_encoded(api: Api) -> None:
    """Clarifai's Python client sends model 'the/model' as /v2/models/the%2Fmodel."""
    assert api.post("/models", model_body("the/model")).status_code == 200
    for path in ("/v2/models/the%2Fmodel", "/v2/models/the%2fmodel/output_info",
                 f"/v2/users/me/apps/{api.app_id}/models/the%2Fmodel"):
        r = api.client.get(path, headers=api.headers())
        assert r.status_code == 200 and r.json()["model"]["id"] == "the/model", (path, r.text)
    assert api.client.get("/v2/models/the/model", headers=api.headers()).status_code == 404
    body = {"input": {"data": {"concepts": [{"id": "cat"}]},
                      "feedback_info": {"event_type": "annotation", "output_id": "unknown-output"}}}
    r = api.client.post("/v2/models/the%2Fmodel/feedback", json=body, headers=api.headers())  # the fast lane
    assert r.status_code == 200, r.text
    assert api.client.request("DELETE", "/v2/models/the%2Fmodel", headers=api.headers()).status_code == 200


def test_hyper_params_are_kept_and_shown(api: Api) -> None:
    params = {"MAX_NITEMS": 1000000.0, "N_EPOCHS": 5, "custom_training_cfg_args": {}}
    r = api.post("/models", {"model": {"id": "hp", "output_info": {"output_config": {"hyper_params": params}}}})
    assert r.status_code == 200, r.text
    assert api.get("/models/hp").json()["model"]["output_info"]["output_config"]["hyper_params"] == params


def test_deleting_models_keeps_built_ins_and_the_feedback_log(api: Api, core: VisionLoop) -> None:
    for model_id in ("one", "two", "three"):
        assert api.post("/models", model_body(model_id)).status_code == 200
    r = api.client.request("DELETE", "/v2/models/one", headers=api.headers())
    assert r.status_code == 200, r.text
    assert api.get("/models/one").status_code == 404
    assert api.post("/models", model_body("one")).status_code == 200  # the id is free again
    r = api.client.request("DELETE", "/v2/models", json={"ids": ["two", "nope"]}, headers=api.headers())
    assert r.status_code == 404 and api.get("/models/two").status_code == 200  # all or nothing
    r = api.client.request("DELETE", "/v2/models", json={}, headers=api.headers())
    assert r.status_code == 400 and r.json()["status"]["details"].startswith("ids:")
    r = api.client.request("DELETE", "/v2/models", json={"delete_all": True}, headers=api.headers())
    assert r.status_code == 200, r.text
    ids = [m["id"] for m in api.get("/models", params={"per_page": 100}).json()["models"]]
    assert GENERAL in ids and not {"one", "two", "three"} & set(ids)


def test_feedback_about_a_deleted_model_stays_marked(api: Api) -> None:
    assert api.post("/models", model_body("gone")).status_code == 200
    body = {"input": {"data": {"concepts": [{"id": "cat"}]},
                      "feedback_info": {"event_type": "annotation", "output_id": "unknown-output"}}}
    assert api.post("/models/gone/feedback", body).status_code == 200
    assert api.client.request("DELETE", "/v2/models/gone", headers=api.headers()).status_code == 200
    (event,) = api.get("/feedback").json()["feedback"]
    assert event["model_id"] == "gone" and event["model_deleted"] is True


def test_model_inputs_lists_the_apps_inputs(api: Api) -> None:
    r = api.post("/inputs", {"inputs": [{"id": "in-1", "data": {"image": {"base64": b64(photo("chelsea"))}}}]})
    assert r.status_code == 200, r.text
    assert api.post("/models", model_body("m")).status_code == 200
    r = api.get("/models/m/inputs", params={"per_page": 1000})
    assert r.status_code == 200 and [i["id"] for i in r.json()["inputs"]] == ["in-1"]


def test_feedback_reads_the_models_concepts_as_they_are_now(api: Api) -> None:
    """The feedback resolver's vocabulary follows a patch of the model's concepts (it was kept by
    version id, and a model not trained yet keeps its version when its concepts change)."""
    assert api.post("/models", model_body(concepts=[{"id": "cat"}, {"id": "dog"}])).status_code == 200

    def sources() -> list[tuple[str, str]]:
        body = {"input": {"data": {"concepts": [{"id": "cat"}]}, "feedback_info": {
            "event_type": "annotation", "output_id": "unknown-output", "end_user_id": f"u{len(seen)}"}}}
        assert api.post("/models/pets/feedback", body).status_code == 200
        seen.append(0)
        event = api.get("/feedback").json()["feedback"][-1]  # the newest
        return [(c["id"], c["source"]) for c in event["data"]["concepts"]]

    seen: list[int] = []
    assert sources() == [("cat", "model")]
    remove = {"models": [{"id": "pets", "output_info": {"data": {"concepts": [{"id": "cat"}]}}}], "action": "remove"}
    assert api.client.patch("/v2/models", json=remove, headers=api.headers()).status_code == 200
    assert sources() == [("cat", "app")]  # an app concept now, no longer the model's
