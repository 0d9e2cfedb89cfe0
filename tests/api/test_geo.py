"""Where images were taken: data.geo on inputs, and searching by distance or box, through HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api, b64, png_bytes
from visionloop.status import SEARCH_INVALID_REQUEST

# (id, latitude, longitude): Paris, Versailles (17 km from Paris), London (344 km), New York,
# Fiji on both sides of the antimeridian
PLACES = [("paris", 48.8566, 2.3522), ("versailles", 48.8049, 2.1204), ("london", 51.5074, -0.1278),
          ("new-york", 40.7128, -74.0060), ("suva", -18.1248, 178.4501), ("taveuni", -16.85, -179.95)]


def geo_point(lat: float, lon: float) -> dict[str, Any]:
    return {"geo_point": {"latitude": lat, "longitude": lon}}


@pytest.fixture
def places(api: Api) -> Api:
    inputs = [{"id": pid, "data": {"image": {"base64": b64(png_bytes((i * 40, 90, 200 - i * 30)))},
                                   "geo": geo_point(lat, lon),
                                   "concepts": [{"id": "capital", "value": pid in ("paris", "london")}]}}
              for i, (pid, lat, lon) in enumerate(PLACES)]
    inputs.append({"id": "nowhere", "data": {"image": {"base64": b64(png_bytes((1, 2, 3)))}}})
    r = api.post("/inputs", {"inputs": inputs})
    assert r.status_code == 200, r.text
    return api


def near(api: Api, lat: float, lon: float, kind: str, value: float, *more: dict) -> list[str]:
    term = {"input": {"data": {"geo": {**geo_point(lat, lon), "geo_limit": {"type": kind, "value": value}}}}}
    r = api.post("/searches", {"query": {"ands": [term, *more]}})
    assert r.status_code == 200, r.text
    return [h["input"]["id"] for h in r.json()["hits"]]


def test_an_input_keeps_its_place(places: Api) -> None:
    got = places.get("/inputs/paris").json()["input"]["data"]
    assert got["geo"] == geo_point(48.8566, 2.3522)
    assert "geo" not in places.get("/inputs/nowhere").json()["input"]["data"]


def test_within_a_distance_closest_first_in_every_unit(places: Api) -> None:
    assert near(places, 48.8566, 2.3522, "withinKilometers", 20) == ["paris", "versailles"]
    assert near(places, 48.8566, 2.3522, "withinKilometers", 16) == ["paris"]       # Versailles is 17 km out
    assert near(places, 48.85, 2.30, "withinMiles", 250) == ["paris", "versailles", "london"]  # 213 mi = 342 km
    assert near(places, 48.85, 2.30, "withinKilometers", 250) == ["paris", "versailles"]
    assert near(places, 48.8566, 2.3522, "withinDegrees", 4) == ["paris", "versailles", "london"]  # 3.1 deg
    assert near(places, 48.8566, 2.3522, "withinRadians", 0.003) == ["paris", "versailles"]  # 17 km = 0.0027 rad
    assert near(places, 48.8566, 2.3522, "withinRadians", 0.002) == ["paris"]


def test_radius_search_across_the_antimeridian(places: Api) -> None:
    assert sorted(near(places, -17.5, 179.9, "withinKilometers", 300)) == ["suva", "taveuni"]


def test_geo_and_other_terms_combine(places: Api) -> None:
    capital = {"input": {"data": {"concepts": [{"id": "capital", "value": True}]}}}
    assert near(places, 48.8566, 2.3522, "withinKilometers", 1000, capital) == ["paris", "london"]


def test_within_a_box_also_one_crossing_the_antimeridian(places: Api) -> None:
    def box(a: tuple[float, float], b: tuple[float, float]) -> list[str]:
        term = {"input": {"data": {"geo": {"geo_box": [geo_point(*a), geo_point(*b)]}}}}
        r = places.post("/searches", {"query": {"ands": [term]}})
        assert r.status_code == 200, r.text
        return sorted(h["input"]["id"] for h in r.json()["hits"])

    assert box((52, -1), (48, 3)) == ["london", "paris", "versailles"]
    assert box((48, 3), (52, -1)) == ["london", "paris", "versailles"]   # any two opposite corners
    assert box((-20, 178), (-15, -179)) == ["suva", "taveuni"]          # the short way, across 180


@pytest.mark.parametrize(("geo", "field"), [
    ({"geo_point": {"latitude": 91, "longitude": 0}}, "latitude"),
    ({"geo_point": {"latitude": 0, "longitude": -180.5}}, "longitude"),
    ({"geo_point": {"latitude": "north", "longitude": 0}}, "latitude"),
])
def test_an_impossible_place_is_refused_and_nothing_stored(api: Api, geo: dict, field: str) -> None:
    r = api.post("/inputs", {"inputs": [{"id": "bad-place", "data": {"image": {"base64": b64(png_bytes((9, 9, 9)))},
                                                                      "geo": geo}}]})
    assert r.status_code == 400 and r.json()["status"]["code"] == 11102, r.text
    assert field in r.json()["status"]["details"]
    assert api.get("/inputs/bad-place").status_code == 404


@pytest.mark.parametrize(("geo", "says"), [
    ({"geo_point": {"latitude": 0, "longitude": 0}}, "geo_limit"),
    ({"geo_point": {"latitude": 0, "longitude": 0}, "geo_limit": {"type": "withinFurlongs", "value": 1}}, "type"),
    ({"geo_point": {"latitude": 0, "longitude": 0}, "geo_limit": {"type": "withinMiles", "value": -1}}, "value"),
    ({"geo_point": {"latitude": 95, "longitude": 0}, "geo_limit": {"type": "withinMiles", "value": 1}}, "latitude"),
    ({"geo_box": [{"geo_point": {"latitude": 0, "longitude": 0}}]}, "geo_box"),
])
def test_a_malformed_geo_search_names_the_field(places: Api, geo: dict, says: str) -> None:
    r = places.post("/searches", {"query": {"ands": [{"input": {"data": {"geo": geo}}}]}})
    assert r.status_code == 400 and r.json()["status"]["code"] == SEARCH_INVALID_REQUEST, r.text
    assert says in r.json()["status"]["details"]


def test_patch_sets_moves_and_removes_a_place(places: Api) -> None:
    def patch(action: str, lat: float, lon: float) -> None:
        body = {"action": action, "inputs": [{"id": "nowhere", "data": {"geo": geo_point(lat, lon)}}]}
        r = places.patch("/inputs", body)
        assert r.status_code == 200, r.text

    patch("merge", 48.86, 2.35)
    assert near(places, 48.8566, 2.3522, "withinKilometers", 5) == ["paris", "nowhere"]
    patch("merge", 51.51, -0.13)                                                           # moved to London
    assert near(places, 48.8566, 2.3522, "withinKilometers", 5) == ["paris"]
    assert near(places, 51.5074, -0.1278, "withinKilometers", 5) == ["london", "nowhere"]
    patch("remove", 51.51, -0.13)
    assert near(places, 51.5074, -0.1278, "withinKilometers", 5) == ["london"]
    assert "geo" not in places.get("/inputs/nowhere").json()["input"]["data"]
