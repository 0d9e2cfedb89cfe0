"""npm ``clarifai`` 2.9.1 against a live server (skipped where node/npm are missing).

The package is installed once into .cache/client-venvs/js (pins: tests/clients/js/package.json)
and tests/clients/js/clarifai_291.js runs in node with NODE_PATH pointing there, once per
variant: "short" (``apiEndpoint`` only: /v2/...) and "app" (with ``userId: "me"`` and
``appId: "selftest-app"``: /v2/users/me/apps/selftest-app/...).

Predict (by model id, id + version, and name: POST /v2/models/searches first; the script logs
every request the client's axios makes), inputs.search by concept and image, models.feedback
(concepts, regions) and inputs.searchFeedback on the real output and search ids.
"""

from __future__ import annotations

import shutil
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

RED, GREEN = png_bytes((255, 0, 0)), png_bytes((0, 255, 0), (6, 10))
GENERAL, GENERAL_VERSION = catalog.GENERAL.id, catalog.GENERAL.base_version_id
FACE = catalog.FACE.id


@pytest.fixture(scope="module")
def prefix(variant: str) -> str:
    return f"js-{variant}-"


@pytest.fixture(scope="module")
def run(variant, prefix, clarifai_js_modules, live_server: LiveServer, image_host,  # type: ignore[no-untyped-def]
        client_home, photos) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "clarifai_js_modules should have skipped without node"
    config = {"base_url": live_server.base_url, "key": live_server.key, "app_id": live_server.app_id,
              "prefix": prefix, "scoped": variant == "app", "png_b64": b64(RED),
              "image_url": image_host.add(f"/{prefix}green.png", GREEN),
              "photos": {name: str(p.path) for name, p in photos.items()},
              "photo_urls": {name: image_host.add(f"/{prefix}{name}.jpg", p.data, "image/jpeg")
                             for name, p in photos.items()}}
    env = venvs.client_env(client_home, NODE_PATH=str(clarifai_js_modules))
    return venvs.run_json([node, str(venvs.JS_DIR / "clarifai_291.js")], config, env)


@pytest.fixture(scope="module")
def step(run, live_server):  # type: ignore[no-untyped-def]
    return lambda name: value(run, name, live_server)


def test_app_points_at_the_server(step, variant: str, live_server: LiveServer) -> None:
    expected = live_server.base_url + "/v2"
    if variant == "app":
        expected += f"/users/me/apps/{live_server.app_id}"
    assert step("base_path") == expected


def test_inputs_create_with_concepts(step, prefix: str, image_host) -> None:
    red, url = step("inputs_create")
    assert red["id"] == prefix + "red"
    assert red["concepts"] == [{"id": prefix + "color", "value": 1}, {"id": prefix + "not-color", "value": 0}]
    assert url["id"] == prefix + "url"
    assert url["url"] == image_host.base_url + f"/{prefix}green.png"
    assert url["concepts"] == [{"id": prefix + "color", "value": 1}]
    assert f"/{prefix}green.png" in image_host.hits


def test_inputs_get_reads_back_id_and_concepts(step, prefix: str) -> None:
    got = step("inputs_get")
    assert got["id"] == prefix + "red"
    assert got["concepts"] == [{"id": prefix + "color", "value": 1}, {"id": prefix + "not-color", "value": 0}]


def test_inputs_create_with_regions_and_read_them_back(step) -> None:
    first, second = step("inputs_regions")
    assert first == {"id": "r1", "box": [0.1, 0.2, 0.5, 0.6]}
    assert len(second["id"]) == 32 and second["box"] == [0.0, 0.0, 0.3, 0.3]


def test_inputs_get_missing_rejects_with_404(step) -> None:
    assert step("inputs_get_missing") == {"http_status": 404, "code": 30102}


def test_inputs_list_and_delete(step, prefix: str) -> None:
    ids = step("inputs_list")
    assert len(ids) == len(set(ids))
    assert {prefix + "red", prefix + "url"} <= set(ids)
    assert step("inputs_delete") == 10000
    after = set(step("inputs_list_after_delete"))
    assert prefix + "red" in after and prefix + "url" not in after


def test_concepts_create_get_list_search_update(step, prefix: str) -> None:
    assert [(c["id"], c["name"]) for c in step("concepts_create")] == [(prefix + "concept", "Jsclient " + prefix)]
    got = step("concepts_get")
    assert (got["id"], got["name"]) == (prefix + "concept", "Jsclient " + prefix)
    ids = step("concepts_list")
    assert len(ids) == len(set(ids))
    assert {prefix + "concept", prefix + "color", prefix + "not-color"} <= set(ids)
    assert [c["id"] for c in step("concepts_search")] == [prefix + "concept"]
    assert [(c["id"], c["name"]) for c in step("concepts_update")] == [(prefix + "concept", "Renamed " + prefix)]


def test_models_list(step) -> None:
    assert isinstance(step("models_list"), int)


# --- predict and search ------------------------------------------------------------------------

def only_output(view: dict[str, Any]) -> dict[str, Any]:
    assert view["status"] == 10000 and len(view["outputs"]) == 1, view
    return view["outputs"][0]


def api_base(variant: str, live_server: LiveServer) -> str:
    return live_server.base_url + "/v2" + (f"/users/me/apps/{live_server.app_id}" if variant == "app" else "")


def test_predict_general_model_base64_and_url(step, prefix: str, image_host) -> None:
    for name in ("predict_general_model", "predict_url"):
        out = only_output(step(name))
        assert_cat_photo(out)
        assert out["model_id"] == GENERAL
    assert f"/{prefix}cat.jpg" in image_host.hits


def test_predict_with_id_and_version(step, variant: str, live_server: LiveServer) -> None:
    got = step("predict_id_version")
    base = api_base(variant, live_server)
    assert got["requests"] == [f"POST {base}/models/{GENERAL}/versions/{GENERAL_VERSION}/outputs"]
    out = only_output(got["value"])
    assert_cat_photo(out)
    assert out["version_id"] == GENERAL_VERSION


def test_predict_by_model_name_searches_the_model_first(step, variant: str, live_server: LiveServer) -> None:
    got = step("predict_name")
    base = api_base(variant, live_server)
    assert got["requests"] == [f"POST {base}/models/searches",
                               f"POST {base}/models/{GENERAL}/versions/{GENERAL_VERSION}/outputs"]
    assert_cat_photo(only_output(got["value"]))


def test_predict_output_config_and_face_model(step) -> None:
    full = concept_names(only_output(step("predict_general_model")))
    assert concept_names(only_output(step("predict_max_concepts"))) == full[:3]
    face = only_output(step("predict_face"))
    assert face["model_id"] == FACE
    assert_face_region(face)


def test_inputs_search_by_concept_and_by_image(step, prefix: str) -> None:
    assert [i["id"] for i in step("search_inputs_create")] == [prefix + "cat", prefix + "face", prefix + "coffee"]
    annotated = step("search_annotated")
    assert_ranked_first(annotated, prefix + "cat", prefix)
    assert [h["id"] for h in annotated["hits"]] == [prefix + "cat"]
    assert_ranked_first(step("search_predicted"), prefix + "cat", prefix, absent=(prefix + "face", prefix + "coffee"))
    assert_ranked_first(step("search_image_base64"), prefix + "cat", prefix)
    assert_ranked_first(step("search_image_url"), prefix + "cat", prefix)
    assert_ranked_first(step("search_input_id"), prefix + "coffee", prefix)


# --- feedback ----------------------------------------------------------------------------------

def test_models_feedback_concepts(step, prefix: str, live_server: LiveServer) -> None:
    assert step("feedback_concepts") == 10000
    assert step("feedback_concepts_version") == 10000
    events = stored_feedback(live_server, prefix + "user")
    ev = one_event(events, output_id=only_output(step("predict_url"))["id"])
    assert (ev["event_type"], ev["model_id"], ev["input_id"], ev["session_id"]) == (
        "annotation", GENERAL, prefix + "cat", prefix + "session")
    assert {(c["name"], c["value"]) for c in ev["data"]["concepts"]} == {("cat", 1.0), ("dog", 0.0)}
    ev = one_event(events, output_id=only_output(step("predict_id_version")["value"])["id"])
    assert ev["version_id"] == GENERAL_VERSION
    assert {(c["name"], c["value"]) for c in ev["data"]["concepts"]} == {("tiger cat", 0.0)}


def test_models_feedback_regions(step, prefix: str, live_server: LiveServer) -> None:
    assert step("feedback_regions") == 10000
    face = only_output(step("predict_face"))
    ev = one_event(stored_feedback(live_server, prefix + "user"), output_id=face["id"])
    assert ev["model_id"] == FACE
    regions = ev["data"]["regions"]
    assert [r["feedback"] for r in regions] == ["accurate", "misplaced", "not_detected", "false_positive"]
    assert regions[0]["region_id"] == face["regions"][0]["id"]
    assert regions[2]["box"] == pytest.approx([0.0, 0.0, 0.1, 0.1])
    assert {(c["name"], c["value"]) for c in regions[3]["concepts"]} == {("face", 0.0)}


def test_inputs_search_feedback(step, prefix: str, live_server: LiveServer) -> None:
    assert step("feedback_search") == 10000
    search = step("search_predicted")
    ev = one_event(stored_feedback(live_server, prefix + "user"), search_id=search["id"])
    assert (ev["event_type"], ev["input_id"]) == ("search_click", prefix + "cat")
    assert ev["rank"] == [h["id"] for h in search["hits"]].index(prefix + "cat") + 1
