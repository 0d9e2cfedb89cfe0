"""Geo math: distances checked against known values, and the properties the search relies on."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from visionloop.services import geo

PARIS, LONDON = geo.GeoPoint(48.8566, 2.3522), geo.GeoPoint(51.5074, -0.1278)
points = st.builds(geo.GeoPoint, st.floats(-90, 90), st.floats(-180, 180))


def test_known_distances() -> None:
    assert geo.arc(PARIS, LONDON) * 6371.0088 == pytest.approx(343.5, abs=1.0)  # km, great circle
    assert geo.arc(geo.GeoPoint(0, 0), geo.GeoPoint(0, 180)) == pytest.approx(math.pi)
    assert geo.arc(geo.GeoPoint(90, 0), geo.GeoPoint(-90, 0)) == pytest.approx(math.pi)
    assert geo.arc(geo.GeoPoint(0, 179.5), geo.GeoPoint(0, -179.5)) == pytest.approx(math.radians(1))


def test_limit_units() -> None:
    center = geo.GeoPoint(0, 0)
    assert geo.circle(center, "withinKilometers", 6371.0088).radius == pytest.approx(1.0)
    assert geo.circle(center, "withinMiles", 3958.7613).radius == pytest.approx(1.0)
    assert geo.circle(center, "withinDegrees", 90).radius == pytest.approx(math.pi / 2)
    assert geo.circle(center, "withinRadians", 10).radius == pytest.approx(math.pi)  # the whole globe at most
    with pytest.raises(ValueError):
        geo.circle(center, "withinFurlongs", 1)


def test_box_spans_the_short_way() -> None:
    assert geo.box(geo.GeoPoint(10, -5), geo.GeoPoint(0, 5)) == geo.Box(0, 10, -5, 5)
    across = geo.box(geo.GeoPoint(-20, 178), geo.GeoPoint(-15, -179))
    assert across == geo.Box(-20, -15, 178, -179)
    assert geo.contains(across, geo.GeoPoint(-17, 179.9)) and geo.contains(across, geo.GeoPoint(-17, -179.5))
    assert not geo.contains(across, geo.GeoPoint(-17, 0))


def unit_vector(p: geo.GeoPoint) -> tuple[float, float, float]:
    lat, lon = math.radians(p.latitude), math.radians(p.longitude)
    return math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)


@given(points, points, points)
def test_arc_is_the_angle_between_the_points_and_a_metric(a: geo.GeoPoint, b: geo.GeoPoint, c: geo.GeoPoint) -> None:
    """Checked against the angle between 3-D unit vectors (another formula), away from where its
    arccos loses precision; then symmetry and the triangle inequality."""
    d = geo.arc(a, b)
    cosine = sum(x * y for x, y in zip(unit_vector(a), unit_vector(b)))
    if abs(cosine) < 0.999:
        assert d == pytest.approx(math.acos(cosine), abs=1e-9)
    assert 0 <= d <= math.pi + 1e-12
    assert d == pytest.approx(geo.arc(b, a), abs=1e-12)
    assert geo.arc(a, a) == pytest.approx(0, abs=1e-7)
    assert d <= geo.arc(a, c) + geo.arc(c, b) + 1e-9


@given(points, points, st.floats(0, 4))
def test_a_circle_holds_exactly_the_points_within_its_radius(c: geo.GeoPoint, p: geo.GeoPoint, r: float) -> None:
    area = geo.circle(c, "withinRadians", r)
    cosine = sum(x * y for x, y in zip(unit_vector(c), unit_vector(p)))
    angle = math.acos(max(-1.0, min(1.0, cosine)))
    if abs(angle - area.radius) > 1e-6:  # clear of the boundary, where either formula's rounding decides
        assert geo.contains(area, p) == (angle <= area.radius)


@given(points, points, points, st.floats(0, 4))
def test_the_latitude_prefilter_never_drops_a_point_inside(c: geo.GeoPoint, a: geo.GeoPoint, p: geo.GeoPoint,
                                                           r: float) -> None:
    """The database only reads inputs within latitude_range: no point of an area may lie outside it."""
    for area in (geo.circle(c, "withinRadians", r), geo.box(a, c)):
        if geo.contains(area, p):
            south, north = geo.latitude_range(area)
            assert south - 1e-9 <= p.latitude <= north + 1e-9
