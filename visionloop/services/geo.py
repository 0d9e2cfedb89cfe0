"""Where an image was taken: points on the globe and the areas geo searches ask about.

Clarifai inputs carry ``data.geo.geo_point`` (latitude, longitude in degrees); a search term
asks for inputs within a distance of a point (``geo_limit``: miles, kilometres, degrees or
radians of arc along the great circle) or inside a box spanned by two points. The database
narrows candidates with a latitude/longitude range; :func:`contains` then decides exactly.
"""

from __future__ import annotations

import dataclasses
import math

EARTH_RADIUS = {"withinMiles": 3958.7613, "withinKilometers": 6371.0088}  # mean radius (IUGG)
LIMIT_TYPES = ("withinMiles", "withinKilometers", "withinDegrees", "withinRadians")


@dataclasses.dataclass(frozen=True)
class GeoPoint:
    latitude: float   # degrees, [-90, 90]
    longitude: float  # degrees, [-180, 180]


@dataclasses.dataclass(frozen=True)
class Circle:
    """Every point within ``radius`` radians of arc (great-circle distance) of ``center``."""

    center: GeoPoint
    radius: float


@dataclasses.dataclass(frozen=True)
class Box:
    """Latitudes from ``south`` to ``north``, longitudes from ``west`` to ``east`` (west > east
    crosses the antimeridian)."""

    south: float
    north: float
    west: float
    east: float


Area = Circle | Box


def circle(center: GeoPoint, limit_type: str, value: float) -> Circle:
    """A ``geo_limit`` around a point as a circle; ``value`` is in the limit type's unit."""
    if limit_type in EARTH_RADIUS:
        radius = value / EARTH_RADIUS[limit_type]
    elif limit_type == "withinDegrees":
        radius = math.radians(value)
    elif limit_type == "withinRadians":
        radius = value
    else:
        raise ValueError(f"unknown geo_limit type {limit_type!r}")
    return Circle(center, min(radius, math.pi))


def box(a: GeoPoint, b: GeoPoint) -> Box:
    """The box with two opposite corners; it spans the shorter way round in longitude."""
    west, east = sorted((a.longitude, b.longitude))
    if east - west > 180:  # the shorter way crosses the antimeridian
        west, east = east, west
    return Box(min(a.latitude, b.latitude), max(a.latitude, b.latitude), west, east)


def arc(a: GeoPoint, b: GeoPoint) -> float:
    """Great-circle distance in radians (haversine: accurate at small distances too)."""
    lat1, lat2 = math.radians(a.latitude), math.radians(b.latitude)
    dlat, dlon = lat2 - lat1, math.radians(b.longitude - a.longitude)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * math.asin(min(1.0, math.sqrt(h)))


def contains(area: Area, point: GeoPoint) -> bool:
    if isinstance(area, Circle):
        return arc(area.center, point) <= area.radius + 1e-12
    if not area.south <= point.latitude <= area.north:
        return False
    if area.west <= area.east:
        return area.west <= point.longitude <= area.east
    return point.longitude >= area.west or point.longitude <= area.east


def latitude_range(area: Area) -> tuple[float, float]:
    """Latitudes no point of the area lies outside of (what the database filters on)."""
    if isinstance(area, Box):
        return area.south, area.north
    reach = math.degrees(area.radius)
    return max(-90.0, area.center.latitude - reach), min(90.0, area.center.latitude + reach)
