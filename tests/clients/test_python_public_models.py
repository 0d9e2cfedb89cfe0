"""``app.public_models.*`` of the official Python ``clarifai`` 2.6.2 client against a live server:
the public models served offline answer in the shapes the client parses (it reads responses into
its protobuf messages, so a misnamed field would vanish), the others say they are not available
offline (docs/public-models.md). The script: tests/clients/scripts/clarifai_py262_public.py."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients import venvs
from tests.clients.harness import value
from tests.clients.live import LiveServer
from visionloop.inference import catalog

pytestmark = [pytest.mark.clients, pytest.mark.timeout(600)]

SERVED = {"nsfw_model": catalog.NSFW, "color_model": catalog.COLOR_MODEL, "focus_model": catalog.FOCUS_MODEL,
          "food_model": catalog.FOOD, "apparel_model": catalog.APPAREL, "general_model": catalog.GENERAL,
          "general_embedding_model": catalog.EMBED, "face_detection_model": catalog.FACE,
          "logo_model": catalog.LOGO}


@pytest.fixture(scope="module")
def run(clarifai_py_python, live_server: LiveServer, image_host, client_home, photos) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    config = {"base_url": live_server.base_url, "key": live_server.key,
              "photo_urls": {name: image_host.add(f"/public-{name}.jpg", p.data, "image/jpeg")
                             for name, p in photos.items()}}
    return venvs.run_json([str(clarifai_py_python), str(venvs.SCRIPTS / "clarifai_py262_public.py")], config,
                          venvs.client_env(client_home))


def test_every_public_model_the_client_holds_is_served_or_refused_clearly(run, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    names = value(run, "names", live_server)
    assert set(SERVED) <= set(names) and len(names) == 18
    for name in names:
        step = run["steps"][name]
        if name in SERVED:
            got = value(run, name, live_server)
            assert got["status"] == 10000 and got["model_id"] == SERVED[name].id, (name, got)
        else:
            assert not step["ok"], (name, step)
            body = step["error"]["body"]["status"]
            assert step["error"]["http_status"] == 403 and body["code"] == 21201, (name, body)
            assert "not available offline" in body["description"].lower()


def test_nsfw_through_the_client(run, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    for step in ("nsfw_model", "nsfw_by_name"):
        got = value(run, step, live_server)
        assert set(got["concepts"]) == {"sfw", "nsfw"} and got["concepts"]["sfw"] > 0.6, got
        assert got["model_name"] == "nsfw-v1.0" and got["type"] == "concept"


def test_colors_parse_into_the_clients_color_messages(run, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    for step in ("color_model", "predict_colors"):
        colors = value(run, step, live_server)["colors"]
        assert colors and abs(sum(c["value"] for c in colors) - 1) < 1e-3
        assert all(c["raw_hex"].startswith("#") and c["w3c"]["hex"].startswith("#") and c["w3c"]["name"]
                   for c in colors)


def test_focus_parses_into_the_clients_focus_messages(run, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    got = value(run, "focus_model", live_server)
    assert 0 < got["focus"]["value"] <= 1 and 0 < got["focus"]["density"] <= 1
    assert got["regions"] and all(r["focus"]["value"] >= 0.5 for r in got["regions"])
    assert value(run, "focus_search", live_server) == [catalog.FOCUS_MODEL.id]


def test_food_through_the_client(run, live_server: LiveServer) -> None:  # type: ignore[no-untyped-def]
    got = value(run, "food_model", live_server)
    assert got["model_name"] == "food-items-v1.0" and "espresso" in list(got["concepts"])[:3], got
