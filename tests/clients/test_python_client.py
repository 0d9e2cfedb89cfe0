"""The official Python ``clarifai`` 2.6.2 client (``clarifai.rest``) against a live server.

The client runs in its own venv (clarifai==2.6.2, protobuf==3.17.3, googleapis-common-protos==1.6.0)
through tests/clients/scripts/clarifai_py262.py, once per module; each test checks one step.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients import venvs
from tests.clients.harness import b64, value
from tests.clients.live import LiveServer, png_bytes

pytestmark = [pytest.mark.clients, pytest.mark.timeout(900)]

P = "py262-"
RED, BLUE, GREEN = png_bytes((255, 0, 0)), png_bytes((0, 0, 255)), png_bytes((0, 255, 0), (12, 10))


@pytest.fixture(scope="module")
def run(clarifai_py_python, live_server: LiveServer, image_host, client_home) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    config = {"base_url": live_server.base_url, "key": live_server.key, "prefix": P,
              "png_b64": b64(RED), "png2_b64": b64(BLUE),
              "image_url": image_host.add(f"/{P}green.png", GREEN)}
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
