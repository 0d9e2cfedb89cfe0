"""``clarifai-grpc`` 12.6.0's JSON channel (V2Stub over HTTP/JSON) against a live server.

Runs tests/clients/scripts/clarifai_grpc_json.py in the client's venv (clarifai-grpc==12.6.0,
protobuf==6.33.6), once per variant: "short" sends no user_app_id (short /v2/... paths), "app"
sets ``user_app_id=UserAppIDSet(user_id="me", app_id="selftest-app")`` on every request (app-scoped
/v2/users/me/apps/selftest-app/... paths, user_app_id repeated in bodies and query strings).

Models (GetModel by id and name, ListModelVersions, PostModelsSearches), PostModelOutputs on real
photos, PostSearches by annotated and predicted concept, image and input id; and feedback, which
12.6.0 has no RPC for: its JSON is posted with the channel's own HTTP client (session, headers).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients import venvs
from tests.clients.harness import (
    assert_cat_photo,
    assert_face_region,
    assert_ranked_first,
    b64,
    concept_names,
    one_event,
    stored_feedback,
    value,
)
from tests.clients.live import LiveServer
from tests.helpers import png_bytes
from visionloop.inference import catalog

pytestmark = [pytest.mark.clients, pytest.mark.timeout(900)]

RED, GREEN = png_bytes((255, 0, 0)), png_bytes((0, 255, 0), (10, 6))
SUCCESS = 10000
GENERAL, GENERAL_VERSION = catalog.GENERAL.id, catalog.GENERAL.base_version_id
FACE = catalog.FACE.id


@pytest.fixture(scope="module")
def prefix(variant: str) -> str:
    return f"grpc-{variant}-"


@pytest.fixture(scope="module")
def run(variant, prefix, clarifai_grpc_python, live_server: LiveServer, image_host,  # type: ignore[no-untyped-def]
        client_home, photos) -> dict[str, Any]:
    config = {"base_url": live_server.base_url, "key": live_server.key, "app_id": live_server.app_id,
              "prefix": prefix, "scoped": variant == "app", "png_b64": b64(RED),
              "image_url": image_host.add(f"/{prefix}green.png", GREEN),
              "photos": {name: str(p.path) for name, p in photos.items()},
              "photo_urls": {name: image_host.add(f"/{prefix}{name}.jpg", p.data, "image/jpeg")
                             for name, p in photos.items()}}
    return venvs.run_json([str(clarifai_grpc_python), str(venvs.SCRIPTS / "clarifai_grpc_json.py")], config,
                          venvs.client_env(client_home))


@pytest.fixture(scope="module")
def step(run, live_server):  # type: ignore[no-untyped-def]
    return lambda name: value(run, name, live_server)


def test_json_channel_to_custom_base_url(step) -> None:
    step("channel")


def test_post_inputs_returns_what_was_sent(step, prefix: str, image_host) -> None:
    red, url = step("post_inputs")
    assert red["id"] == prefix + "red"
    assert red["concepts"] == [
        {"id": prefix + "color", "name": prefix + "color", "value": 1.0},
        {"id": prefix + "not-color", "name": prefix + "not-color", "value": 0.0},
    ]
    assert url["id"] == prefix + "url"
    assert url["url"] == image_host.base_url + f"/{prefix}green.png"
    assert [c["id"] for c in url["concepts"]] == [prefix + "color"]
    assert f"/{prefix}green.png" in image_host.hits


def test_get_input_reads_back_id_and_concepts(step, prefix: str) -> None:
    got = step("get_input")
    assert got["id"] == prefix + "red"
    assert [(c["id"], c["value"]) for c in got["concepts"]] == [(prefix + "color", 1.0), (prefix + "not-color", 0.0)]


def test_an_input_posted_with_regions_reads_them_back(step, prefix: str) -> None:
    first, second = step("input_regions")  # coordinates are float32 in the protobuf
    assert first["id"] == "r1" and first["concepts"] == [[prefix + "logo", 1.0]]
    assert first["box"] == pytest.approx({"top_row": 0.1, "left_col": 0.2, "bottom_row": 0.5, "right_col": 0.6})
    assert second["box"] == pytest.approx({"top_row": 0.0, "left_col": 0.0, "bottom_row": 0.3, "right_col": 0.3})
    assert len(second["id"]) == 32 and second["concepts"] == [[prefix + "logo", 0.0]]


def test_get_missing_input_is_input_does_not_exist(step) -> None:
    assert step("get_missing_input")["code"] == 30102  # INPUT_DOES_NOT_EXIST


def test_list_inputs_pages(step, prefix: str) -> None:
    ids = step("list_inputs")
    assert len(ids) == len(set(ids))
    assert {prefix + "red", prefix + "url"} <= set(ids)


def test_post_and_get_concept(step, prefix: str) -> None:
    made = step("post_concepts")
    assert [(c["id"], c["name"]) for c in made] == [(prefix + "concept", "Grpc Concept " + prefix)]
    got = step("get_concept")
    assert (got["id"], got["name"]) == (prefix + "concept", "Grpc Concept " + prefix)


def test_list_concepts_pages(step, prefix: str) -> None:
    ours = {prefix + "concept", prefix + "color", prefix + "not-color"}
    for name in ("list_concepts", "list_concepts_small_pages"):
        ids = step(name)
        assert len(ids) == len(set(ids)), f"{name}: a concept came back on two pages"
        assert ours <= set(ids), f"{name}: missing {sorted(ours - set(ids))}"
    assert sorted(step("list_concepts")) == sorted(step("list_concepts_small_pages"))


def test_search_and_patch_concepts(step, prefix: str) -> None:
    assert step("search_concepts") == [prefix + "concept"]
    assert [(c["id"], c["name"]) for c in step("patch_concepts")] == [(prefix + "concept", "Renamed " + prefix)]


def test_list_models(step, variant: str) -> None:
    # Without user_app_id, clarifai-grpc 12.6.0 sends ListModels to GET /v2/users/me/models
    # (the binding with the most filled path fields, user_id defaulting to "me").
    assert step("list_models") >= 4  # the built-in models


# --- models, predict and search ------------------------------------------------------------------

def only_output(view: dict[str, Any]) -> dict[str, Any]:
    assert view["status"] == SUCCESS and len(view["outputs"]) == 1, view
    return view["outputs"][0]


def test_get_model_by_id_and_by_name(step) -> None:
    expected = {"id": GENERAL, "name": "general-v1.3", "version": GENERAL_VERSION, "version_status": 21100,
                "type": "concept"}
    assert step("get_model") == expected
    assert step("get_model_by_name") == expected


def test_list_model_versions(step) -> None:
    assert GENERAL_VERSION in step("list_model_versions")


def test_post_models_searches(step) -> None:
    assert [m["id"] for m in step("models_search_name")] == [GENERAL]
    assert FACE in step("models_search_type")
    assert GENERAL not in step("models_search_type")


def test_post_model_outputs_base64_url_and_version(step, prefix: str, image_host) -> None:
    for name in ("predict_base64", "predict_url", "predict_version"):
        out = only_output(step(name))
        assert_cat_photo(out)
        assert (out["model_id"], out["version_id"]) == (GENERAL, GENERAL_VERSION)
    assert f"/{prefix}cat.jpg" in image_host.hits
    ids = [only_output(step(n))["id"] for n in ("predict_base64", "predict_url", "predict_version")]
    assert len(set(ids)) == 3, ids


def test_post_model_outputs_output_config(step) -> None:
    full = concept_names(only_output(step("predict_base64")))
    assert concept_names(only_output(step("predict_max_concepts"))) == full[:3]
    selected = {c["name"] for c in only_output(step("predict_select_concepts"))["concepts"]}
    assert selected == {"tabby cat", "dog"}


def test_post_model_outputs_face_detection(step) -> None:
    out = only_output(step("predict_face"))
    assert out["model_id"] == FACE
    assert_face_region(out)


def test_post_searches(step, prefix: str) -> None:
    assert step("post_photo_inputs") == [prefix + "cat", prefix + "face", prefix + "coffee"]
    annotated = step("search_annotated")
    assert_ranked_first(annotated, prefix + "cat", prefix)
    assert [h["id"] for h in annotated["hits"]] == [prefix + "cat"]  # face has pet = 0
    assert_ranked_first(step("search_predicted"), prefix + "cat", prefix, absent=(prefix + "face", prefix + "coffee"))
    assert_ranked_first(step("search_image_base64"), prefix + "cat", prefix)
    assert_ranked_first(step("search_input_id"), prefix + "coffee", prefix)
    ids = [step(n)["id"] for n in ("search_annotated", "search_predicted", "search_image_base64", "search_input_id")]
    assert len(set(ids)) == 4, ids


# --- feedback through the channel's HTTP client ---------------------------------------------------

def test_concept_feedback(step, prefix: str, live_server: LiveServer) -> None:
    assert step("feedback_concepts")["code"] == SUCCESS
    assert step("feedback_concepts_version")["code"] == SUCCESS
    events = stored_feedback(live_server, prefix + "user")
    ev = one_event(events, output_id=only_output(step("predict_base64"))["id"])
    assert (ev["event_type"], ev["model_id"], ev["input_id"]) == ("annotation", GENERAL, prefix + "cat")
    assert {(c["name"], c["value"]) for c in ev["data"]["concepts"]} == {("cat", 1.0), ("dog", 0.0)}
    ev = one_event(events, output_id=only_output(step("predict_version"))["id"])
    assert ev["version_id"] == GENERAL_VERSION
    assert {(c["name"], c["value"]) for c in ev["data"]["concepts"]} == {("tabby cat", 1.0)}


def test_region_feedback(step, prefix: str, live_server: LiveServer) -> None:
    assert step("feedback_regions")["code"] == SUCCESS
    face = only_output(step("predict_face"))
    ev = one_event(stored_feedback(live_server, prefix + "user"), output_id=face["id"])
    accurate, missed = ev["data"]["regions"]
    assert (accurate["feedback"], accurate["region_id"]) == ("accurate", face["regions"][0]["id"])
    assert (missed["feedback"], missed["region_id"]) == ("not_detected", None)
    assert missed["box"] == pytest.approx([0.6, 0.1, 0.7, 0.2])


def test_search_click_feedback(step, prefix: str, live_server: LiveServer) -> None:
    assert step("feedback_search")["code"] == SUCCESS
    search = step("search_image_base64")
    ev = one_event(stored_feedback(live_server, prefix + "user"), search_id=search["id"])
    assert (ev["event_type"], ev["input_id"]) == ("search_click", prefix + "cat")
    assert ev["rank"] == [h["id"] for h in search["hits"]].index(prefix + "cat") + 1
