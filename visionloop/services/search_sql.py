"""The non-visual terms of a search as conditions on the ``inputs`` row, in PostgreSQL's SQL.

With the ``pgvector`` store a visual search with concept, metadata, geo or URL terms is one query:
these conditions join the similarity ordering's WHERE clause, and the HNSW walk (iterative index
scan) goes on until enough rows pass them, or, when the planner expects few rows to pass, the rows
that pass are ranked exactly (:meth:`visionloop.store.pg_vectors.PgVectorStore.nearest`). Each
condition admits exactly the inputs :meth:`visionloop.services.search.SearchService._filter` admits
(the embedded store's path, evaluated row by row), so both stores answer alike:

- metadata containment is compiled from the wanted JSON rather than left to ``jsonb @>``, which
  also lets an array contain a bare scalar (``["a", "b"] @> "a"``), where our rule does not;
- a geo circle compares the same haversine distance with the same tolerance.
"""

from __future__ import annotations

import json
from typing import Any

from visionloop.services import geo
from visionloop.store.pg_vectors import Where
from visionloop.store.tables import url_key


class Conditions:
    """Conditions joined by AND, with their parameters named apart (``f0``, ``f1``, ...)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.params: dict[str, object] = {}

    def bind(self, value: object) -> str:
        name = f"f{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def where(self) -> Where:
        return Where(" AND ".join(f"({p})" for p in self.parts) or "TRUE", self.params)

    def concept(self, concept_ids: list[str], *, present: bool, predicted: bool, predicted_min: float) -> None:
        """Annotated as present (value > 0.5), or predicted at ``predicted_min`` or more; negated
        when not ``present``."""
        if predicted:
            sub = ("SELECT 1 FROM input_concept_scores c WHERE c.app_id = inputs.app_id AND c.input_id = inputs.id "
                   f"AND c.concept_id = ANY({self.bind(concept_ids)}) AND c.value >= {self.bind(predicted_min)}")
        else:
            sub = ("SELECT 1 FROM input_concepts c WHERE c.app_id = inputs.app_id AND c.input_id = inputs.id "
                   f"AND c.concept_id = ANY({self.bind(concept_ids)}) AND c.value > 0.5")
        self.parts.append(f"{'' if present else 'NOT '}EXISTS ({sub})")

    def url(self, url: str) -> None:
        self.parts.append(f"inputs.url_key = {self.bind(url_key(url))} AND inputs.url = {self.bind(url)}")

    def metadata(self, wanted: dict[str, Any]) -> None:
        self.parts.append(self._contains("COALESCE(NULLIF(CAST(inputs.metadata AS jsonb), 'null'::jsonb), '{}'::jsonb)",
                                         wanted, 0))

    def _contains(self, expr: str, wanted: Any, depth: int) -> str:
        """:func:`visionloop.services.search.contains` of the jsonb ``expr``: objects key by key,
        arrays element by element (each wanted element contained in some element), scalars as
        jsonb values (1 and 1.0 equal, true and 1 not)."""
        if isinstance(wanted, dict):
            return " AND ".join([f"jsonb_typeof({expr}) = 'object'"]
                                + [self._contains(f"({expr} -> {self.bind(k)})", v, depth + 1)
                                   for k, v in wanted.items()])
        if isinstance(wanted, list):
            element = f"e{depth}"
            return " AND ".join([f"jsonb_typeof({expr}) = 'array'"]
                                + [f"EXISTS (SELECT 1 FROM jsonb_array_elements({expr}) {element}(v) WHERE "
                                   f"{self._contains(f'{element}.v', w, depth + 1)})" for w in wanted])
        return f"{expr} = CAST({self.bind(json.dumps(wanted))} AS jsonb)"

    def geo(self, area: geo.Area) -> None:
        """Inside the box, or within the circle's great-circle distance (haversine, as geo.arc)."""
        south, north = geo.latitude_range(area)
        lat, lon = "inputs.geo_latitude", "inputs.geo_longitude"
        parts = [f"{lat} BETWEEN {self.bind(south)} AND {self.bind(north)}", f"{lon} IS NOT NULL"]
        if isinstance(area, geo.Circle):
            c_lat, c_lon = self.bind(area.center.latitude), self.bind(area.center.longitude)
            h = (f"power(sin((radians({lat}) - radians({c_lat})) / 2), 2) + cos(radians({c_lat})) * "
                 f"cos(radians({lat})) * power(sin(radians({lon} - {c_lon}) / 2), 2)")
            parts.append(f"2 * asin(least(1.0, sqrt({h}))) <= {self.bind(area.radius + 1e-12)}")
        elif area.west <= area.east:
            parts.append(f"{lon} BETWEEN {self.bind(area.west)} AND {self.bind(area.east)}")
        else:
            parts.append(f"({lon} >= {self.bind(area.west)} OR {lon} <= {self.bind(area.east)})")
        self.parts.append(" AND ".join(parts))

