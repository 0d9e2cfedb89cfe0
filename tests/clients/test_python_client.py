"""The official Python ``clarifai`` 2.6.2 client (``clarifai.rest``) against a live server.

The client runs in its own venv (clarifai==2.6.2, protobuf==3.17.3, googleapis-common-protos==1.6.0)
through tests/clients/scripts/clarifai_py262.py, once per module; each test checks one step.

Beyond inputs and concepts: model lookup (the public-model cache, GET /v2/models/{name}, searches,
versions), predict on real photos (tests/clients/photos.py: a cat, a face) by base64, bytes and
URL with output_config, search by annotated and predicted concepts and by image (URL, base64,
bytes, input id), and feedback (concepts, regions of all four kinds, search clicks) on the real
output and search ids, checked in GET /v2/feedback. 2.6.2's search helpers return Image objects
without the search id: ``raw=True`` returns the response, whose ``id`` search feedback needs.
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

P = "py262-"
RED, BLUE, GREEN = png_bytes((255, 0, 0)), png_bytes((0, 0, 255)), png_bytes((0, 255, 0), (12, 10))
GENERAL, GENERAL_VERSION = catalog.GENERAL.id, catalog.GENERAL.base_version_id
FACE, LOGO = catalog.FACE.id, catalog.LOGO.id


@pytest.fixture(scope="module")
def run(clarifai_py_python, live_server: LiveServer, image_host, client_home, photos) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    config = {"base_url": live_server.base_url, "key": live_server.key, "prefix": P,
              "png_b64": b64(RED), "png2_b64": b64(BLUE),
              "image_url": image_host.add(f"/{P}green.png", GREEN),
              "photos": {name: str(p.path) for name, p in photos.items()},
              "photo_urls": {name: image_host.add(f"/{P}{name}.jpg", p.data, "image/jpeg")
                             for name, p in photos.items()}}
    return venvs.run_json([str(clarifai_py_python), str(venvs.SCRIPTS / "clarifai_py262.py")], config,
                          venvs.client_env(client_home))


@pytest.fixture(scope="module")
def step(run, live_server):  # type: ignore[no-untyped-def]
    return lambda name: value(run, name, live_server)


def test_clarifai_app_starts_against_the_server(step, live_server: LiveServer) -> None:
    step("init")
    assert step("basev2") == live_server.base_url
    assert isinstance(step("models_cached"), int)


def test_clarifai_api_base_env_var_points_the_client(step, live_server: LiveServer) -> None:
    got = step("init_env_base")
    assert got["basev2"] == live_server.base_url


def test_create_image_from_base64_with_concepts(step) -> None:
    img = step("create_base64")
    assert img["id"] == P + "b64"
    assert img["concepts"] == [P + "red"]
    assert img["not_concepts"] == [P + "blue"]


def test_create_image_from_bytes(step) -> None:
    img = step("create_bytes")
    assert img["id"] == P + "bytes"
    assert img["concepts"] == [P + "blue"]
    assert img["not_concepts"] == []


def test_create_image_from_url_fetches_the_loopback_image(step, image_host) -> None:
    img = step("create_url")
    assert img["id"] == P + "url"
    assert img["url"] == image_host.base_url + f"/{P}green.png"
    assert img["concepts"] == [P + "green"]
    assert img["not_concepts"] == [P + "red"]
    assert f"/{P}green.png" in image_host.hits


def test_bulk_create_images(step) -> None:
    imgs = step("bulk_create")
    assert [i["id"] for i in imgs] == [P + "bulk1", P + "bulk2"]
    assert imgs[0]["concepts"] == [P + "red"] and imgs[0]["not_concepts"] == []
    assert imgs[1]["concepts"] == [] and imgs[1]["not_concepts"] == [P + "red"]


def test_get_input_reads_back_id_and_concepts(step, image_host) -> None:
    img = step("get_base64")
    assert (img["id"], img["concepts"], img["not_concepts"]) == (P + "b64", [P + "red"], [P + "blue"])
    img = step("get_url")
    assert (img["id"], img["concepts"], img["not_concepts"]) == (P + "url", [P + "green"], [P + "red"])
    assert img["url"] == image_host.base_url + f"/{P}green.png"


def test_merge_concepts_patches_the_input(step) -> None:
    img = step("merge_concepts")
    assert img["concepts"] == sorted([P + "red", P + "extra"])
    assert img["not_concepts"] == [P + "blue"]


def test_an_input_annotated_with_regions_is_created_merged_and_read(step) -> None:
    created = step("regions_create")
    assert created[0] == {"id": "r1", "box": [0.1, 0.2, 0.5, 0.6]}
    assert created[1]["box"] == [0.0, 0.0, 0.3, 0.3] and len(created[1]["id"]) == 32  # zeros left out on the wire
    merged = step("regions_merge")
    assert [r["id"] for r in merged] == ["r1", created[1]["id"], "r2"] and merged[2]["box"] == [0.6, 0.6, 0.9, 0.9]
    raw = step("regions_raw")
    assert [[(c["id"], c["value"]) for c in r["concepts"]] for r in raw] == [
        [(P + "logo", 1.0)], [(P + "logo", 0.0)], [(P + "logo", 1.0)]]


def test_concepts_create_get_and_update(step) -> None:
    assert step("concept_create") == {"id": P + "concept", "name": "Pyclient Alpha"}
    assert step("concept_get") == {"id": P + "concept", "name": "Pyclient Alpha"}
    assert step("concept_update") == {"id": P + "concept", "name": "Pyclient Renamed"}
    assert step("concept_get_renamed") == {"id": P + "concept", "name": "Pyclient Renamed"}


def test_concepts_bulk_create(step) -> None:
    made = step("concept_bulk_create")
    assert made == [{"id": P + "many%02d" % i, "name": "Pyclient Many %02d" % i} for i in range(25)]


def test_concepts_get_all_pages_through_every_concept(step) -> None:
    ids = step("concept_get_all")
    assert len(ids) == len(set(ids)), "a concept came back on two pages"
    expected = {P + "concept", P + "red", P + "blue", P + "green", P + "extra"}
    expected |= {P + "many%02d" % i for i in range(25)}
    assert expected <= set(ids), f"missing: {sorted(expected - set(ids))}"


def test_concepts_search_by_name_with_wildcard(step) -> None:
    assert step("concept_search") == [P + "concept"]
    many = step("concept_search_many")  # 25 hits: the search pages too
    assert sorted(many) == [P + "many%02d" % i for i in range(25)]


def test_inputs_get_all_and_status(step) -> None:
    ids = step("inputs_get_all")
    assert len(ids) == len(set(ids))
    assert {P + "b64", P + "bytes", P + "url", P + "bulk1", P + "bulk2"} <= set(ids)
    status = step("inputs_status")
    assert status["processed"] >= 5
    assert status["errors"] == 0


def test_delete_inputs(step) -> None:
    got = step("delete")
    assert got == {"delete_code": 10000, "get_http_status": 404, "get_code": 30102}
    assert step("delete_many") == 10000
    ids = set(step("inputs_after_delete"))
    assert not ids & {P + "bytes", P + "bulk1", P + "bulk2"}
    assert {P + "b64", P + "url"} <= ids


# --- models, predict and search on real photos -------------------------------------------------

def only_output(view: dict[str, Any]) -> dict[str, Any]:
    assert view["status"] == 10000, view
    assert len(view["outputs"]) == 1, view
    return view["outputs"][0]


def test_models_get_by_name_from_the_public_model_cache(step) -> None:
    got = step("model_get_cached")
    assert got["model_id"] == GENERAL and got["cached"] is True


def test_models_get_by_name_through_the_server(step) -> None:
    # GET /v2/models/general-v1.3 answers the model by its name; the client keeps the version
    assert step("model_get_by_name") == {"model_id": GENERAL, "name": "general-v1.3",
                                         "version": GENERAL_VERSION, "type": "concept"}
    assert step("model_get_logo") == {"model_id": LOGO, "name": "logo",
                                      "version": "ef7c4a5a7c764b94b5b5b3b1f1e5e1b0", "type": "detection"}


def test_models_search_get_info_and_versions(step) -> None:
    found = step("model_search")
    assert [m["model_id"] for m in found] == [GENERAL]
    assert found[0]["version"] == GENERAL_VERSION
    assert GENERAL_VERSION in step("model_list_versions")
    assert step("model_get_info") == "general-v1.3"
    assert step("model_get_info_versioned") == GENERAL


def test_create_a_custom_model_that_refuses_to_predict_until_trained(step) -> None:
    # app.models.create is POST /v2/models; the model is the app's, over the concepts it named
    created = step("custom_model_create")
    assert created["model_id"] == f"{P}pets" and created["type"] == "concept", created
    assert step("custom_model_get")["model_id"] == f"{P}pets"
    assert sorted(step("custom_model_concepts")) == [f"{P}person", f"{P}pet"]
    assert step("custom_model_predict_untrained") == {"http_status": 400, "code": 21202}


def test_model_output_info_of_a_version(step) -> None:
    # get_info(verbose=True) on a model got by name (it has a version id) is
    # GET /v2/models/{id}/versions/{version_id}/output_info
    assert step("model_output_info_versioned") >= 1000  # the ImageNet concepts


def test_predict_cat_photo_by_base64_with_a_model_got_by_name(step) -> None:
    out = only_output(step("predict_b64_by_name"))
    assert_cat_photo(out)
    assert (out["model_id"], out["version_id"]) == (GENERAL, GENERAL_VERSION)


def test_predict_cat_photo_by_url_and_bytes_with_public_models(step, image_host) -> None:
    for name in ("predict_public_url", "predict_public_bytes", "predict_by_id"):
        assert_cat_photo(only_output(step(name)))
    assert f"/{P}cat.jpg" in image_host.hits


def test_predict_through_the_version_path(step) -> None:
    out = only_output(step("predict_versioned_url"))
    assert_cat_photo(out)
    assert out["version_id"] == GENERAL_VERSION


def test_every_predict_has_its_own_output_id(step) -> None:
    ids = [only_output(step(n))["id"] for n in ("predict_b64_by_name", "predict_public_url",
                                                 "predict_public_bytes", "predict_versioned_url")]
    assert len(set(ids)) == len(ids), ids


def test_predict_select_concepts(step) -> None:
    out = only_output(step("predict_select_concepts"))
    values = {c["name"]: c["value"] for c in out["concepts"]}
    assert set(values) == {"tabby cat", "dog", "cat"}, values
    assert values["cat"] > values["dog"] and values["tabby cat"] > values["dog"], values


def test_predict_max_concepts_and_min_value(step) -> None:
    full = concept_names(only_output(step("predict_b64_by_name")))
    top3 = only_output(step("predict_max_concepts"))
    assert concept_names(top3) == full[:3]
    above = only_output(step("predict_min_value"))
    assert above["concepts"] and all(c["value"] >= 0.5 for c in above["concepts"]), above["concepts"]
    full_out = only_output(step("predict_b64_by_name"))
    assert concept_names(above) == [c["name"] for c in full_out["concepts"] if c["value"] >= 0.5]


def test_face_model_finds_the_astronauts_face(step) -> None:
    out = only_output(step("predict_face_b64"))
    assert out["model_id"] == FACE
    region = assert_face_region(out)
    assert region["id"], "a predicted region without an id (region feedback refers to it)"
    assert [c["name"] for c in region["concepts"]] == ["face"]
    by_url = only_output(step("predict_face_by_name_url"))
    assert by_url["model_id"] == FACE
    assert_face_region(by_url)


def test_search_inputs_are_created(step) -> None:
    made = step("search_inputs_create")
    assert [i["id"] for i in made] == [P + "cat", P + "face", P + "coffee"]


def test_search_by_place(step) -> None:
    assert [i["id"] for i in step("geo_create")] == [P + "geo-0", P + "geo-1"]
    assert [h["id"] for h in step("geo_near")["hits"]] == [P + "geo-0"]
    assert sorted(h["id"] for h in step("geo_box")["hits"]) == [P + "geo-0", P + "geo-1"]


def test_search_by_annotated_concepts(step) -> None:
    got = step("search_annotated")
    assert_ranked_first(got, P + "cat", P)
    # the face photo has pet as a *negative* concept: it must not match
    assert [h["id"] for h in got["hits"]] == [P + "cat"]
    assert [h["id"] for h in step("search_annotated_objects")] == [P + "cat"]


def test_search_by_predicted_concepts(step) -> None:
    assert_ranked_first(step("search_predicted"), P + "cat", P, absent=(P + "face", P + "coffee"))


def test_search_by_image_url_base64_and_bytes(step) -> None:
    assert_ranked_first(step("search_image_url"), P + "cat", P)
    assert_ranked_first(step("search_image_base64"), P + "cat", P)
    assert_ranked_first(step("search_image_bytes"), P + "face", P)


def test_search_by_input_id(step) -> None:
    assert_ranked_first(step("search_image_id"), P + "coffee", P)
    objs = step("search_image_objects")
    assert objs[0]["score"] >= objs[-1]["score"]
    assert [o["id"] for o in objs if o["id"].startswith(P)][0] == P + "face"


def test_search_pages(step) -> None:
    pages = step("search_face_pages")
    sizes = [len(p["hits"]) for p in pages]
    assert sizes[:2] == [2, 2] and sizes[2] <= 2, sizes  # the app holds at least 4 inputs by then
    shown = [h["id"] for p in pages for h in p["hits"]]
    assert len(shown) == len(set(shown)), f"pages repeat hits: {shown}"
    scores = [h["score"] for p in pages for h in p["hits"]]
    assert scores == sorted(scores, reverse=True), pages
    assert len({p["id"] for p in pages}) == 3, "each page is a search of its own"


def test_search_pages_with_tied_scores_show_every_input_once(step) -> None:
    copies = [P + "rocket-%d" % n for n in range(4)]
    assert step("search_rocket_inputs") == copies
    full = step("search_rocket_full")["hits"]
    assert sorted(h["id"] for h in full[:4]) == copies and all(h["score"] == full[0]["score"] for h in full[:4])
    paged = [h["id"] for p in step("search_rocket_pages") for h in p["hits"]]
    assert paged == [h["id"] for h in full[:4]], f"per_page=1 pages show {paged}; the full ranking {full[:4]}"


def test_every_search_has_its_own_id(step) -> None:
    ids = [step(n)["id"] for n in ("search_annotated", "search_predicted", "search_image_url",
                                    "search_image_base64", "search_image_bytes", "search_image_id")]
    assert all(ids) and len(set(ids)) == len(ids), ids


# --- feedback ----------------------------------------------------------------------------------

def said(concepts: list[dict[str, Any]]) -> set[tuple[str, float]]:
    return {(c["name"], c["value"]) for c in concepts}


def test_concept_feedback_on_a_real_output(step, live_server: LiveServer) -> None:
    assert step("feedback_concepts") == 10000
    out_id = only_output(step("predict_public_url"))["id"]
    ev = one_event(stored_feedback(live_server, P + "user"), output_id=out_id)
    assert (ev["event_type"], ev["model_id"], ev["version_id"], ev["input_id"], ev["session_id"]) == (
        "annotation", GENERAL, GENERAL_VERSION, P + "cat", P + "session")
    assert ev["data"]["kind"] == "concepts"
    # 2.6.2 sends concept ids; names of the model's concepts resolve to them, others are new
    assert said(ev["data"]["concepts"]) == {("cat", 1.0), ("tabby cat", 1.0), (P + "kitty", 1.0), ("dog", 0.0)}
    sources = {c["name"]: c["source"] for c in ev["data"]["concepts"]}
    assert sources == {"cat": "model", "tabby cat": "model", P + "kitty": "new", "dog": "model"}


def test_concept_feedback_through_a_model_version(step, live_server: LiveServer) -> None:
    assert step("feedback_concepts_version") == 10000
    out_id = only_output(step("predict_versioned_url"))["id"]
    ev = one_event(stored_feedback(live_server, P + "user"), output_id=out_id)
    assert (ev["model_id"], ev["version_id"]) == (GENERAL, GENERAL_VERSION)
    assert said(ev["data"]["concepts"]) == {("Egyptian Mau", 1.0), ("tiger cat", 0.0)}


def test_region_feedback_all_four_kinds(step, live_server: LiveServer) -> None:
    assert step("feedback_regions") == 10000
    face = only_output(step("predict_face_b64"))
    predicted = face["regions"][0]
    ev = one_event(stored_feedback(live_server, P + "user"), output_id=face["id"])
    assert (ev["model_id"], ev["input_id"], ev["data"]["kind"]) == (FACE, P + "face", "regions")
    regions = ev["data"]["regions"]
    assert [r["feedback"] for r in regions] == ["accurate", "misplaced", "not_detected", "false_positive"]
    accurate, misplaced, missed, wrong = regions
    # "accurate" was omitted by the client (the enum's default) and the region named by its id
    assert (accurate["region_id"], accurate["matched_by"]) == (predicted["id"], "id")
    b = predicted["box"]
    assert accurate["box"] == pytest.approx([b["top_row"], b["left_col"], b["bottom_row"], b["right_col"]], abs=1e-6)
    # the client dropped top_row and left_col (both 0): missing coordinates are 0
    assert missed["box"] == pytest.approx([0.0, 0.0, 0.1, 0.1])
    assert missed["region_id"] is None
    assert misplaced["box"] == pytest.approx([0.55, 0.3, 0.75, 0.5])
    assert wrong["box"] == pytest.approx([0.8, 0.8, 0.95, 0.95])
    assert said(accurate["concepts"]) == said(misplaced["concepts"]) == said(missed["concepts"]) == {("face", 1.0)}
    assert said(wrong["concepts"]) == {("face", 0.0)}


def test_search_click_feedback_on_a_real_search(step, live_server: LiveServer) -> None:
    assert step("feedback_search") == 10000
    search = step("search_predicted")
    ev = one_event(stored_feedback(live_server, P + "user"), search_id=search["id"])
    assert (ev["event_type"], ev["input_id"], ev["session_id"]) == ("search_click", P + "cat", P + "session")
    assert ev["rank"] == [h["id"] for h in search["hits"]].index(P + "cat") + 1


def test_search_click_on_the_second_page_has_its_rank_in_the_whole_ranking(step, live_server: LiveServer) -> None:
    got = step("feedback_search_page2")
    assert got["status"] == 10000
    ev = one_event(stored_feedback(live_server, P + "user"), search_id=got["search_id"])
    assert (ev["input_id"], ev["rank"]) == (got["input_id"], 3)  # first hit of page 2 at per_page=2


def test_feedback_on_an_unknown_output_is_stored_unlinked_a_non_hit_refused(step, live_server: LiveServer) -> None:
    assert step("feedback_unknown_output") == {"http_status": 200, "code": 10000}
    unlinked = [e for e in stored_feedback(live_server, P + "user") if e["unlinked"]]
    assert {e["data"]["unlinked"]["output_id"] for e in unlinked} == {"0123456789abcdef0123456789abcdef"}
    assert step("feedback_search_not_a_hit") == {"http_status": 404, "code": 30102}
