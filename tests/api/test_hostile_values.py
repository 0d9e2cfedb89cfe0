"""Hostile numbers and enum text, on every route the schema describes: 11102 naming the field, never a 500.

The number fields are read from the OpenAPI schema, so a route or field added later is covered too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.feedback_support import FACE, GENERAL, concept_body, predict, region, region_body, search_body, status
from tests.helpers import Api, png_bytes
from visionloop.config import load_settings
from visionloop.http.app import create_app

_PLACEHOLDER = "\u2063number\u2063"  # stands for the number in the body until it is written out as JSON text


def _schema_fields() -> dict[str, list[tuple[str, str, str]]]:
    """(method, path, field) of every number and every enum a request body's schema declares (lists as
    their first item), by kind: "number" or "enum"."""
    schema = create_app(load_settings({"data_dir": Path("/nonexistent/unused")}, environ={})).openapi()
    components = schema["components"]["schemas"]

    def resolve(s: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in s:
            s = components[s["$ref"].rsplit("/", 1)[-1]]
        return s

    def walk(s: dict[str, Any], field: str, out: set[tuple[str, str]]) -> None:
        s = resolve(s)
        for sub in s.get("anyOf", []) + s.get("oneOf", []) + s.get("allOf", []):
            walk(sub, field, out)
        if s.get("type") in ("number", "integer"):
            out.add(("number", field))
        if "enum" in s:
            out.add(("enum", field))
        for key, sub in s.get("properties", {}).items():
            walk(sub, f"{field}.{key}" if field else key, out)
        if "items" in s:
            walk(s["items"], f"{field}[0]", out)

    found: dict[str, list[tuple[str, str, str]]] = {"number": [], "enum": []}
    for path, ops in schema["paths"].items():
        if path.startswith("/v2/users/"):  # the app-scoped copies share the short paths' handlers
            continue
        for method, op in ops.items():
            fields: set[tuple[str, str]] = set()
            for content in op.get("requestBody", {}).get("content", {}).values():
                walk(content["schema"], "", fields)
            for kind, field in sorted(fields):
                found[kind].append((method.upper(), path, field))
    return found


FIELDS = _schema_fields()
NUMBER_FIELDS = FIELDS["number"]
ENUM_FIELDS = FIELDS["enum"]


def _body_with(field: str) -> dict[str, Any]:
    """The smallest body that holds ``field`` (``a.b[0].c``), the field set to the placeholder."""
    parts = field.replace("[0]", ".[0]").split(".")
    body: dict[str, Any] = {}
    node: Any = body
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        child: Any = _PLACEHOLDER if last else ([] if parts[i + 1] == "[0]" else {})
        if part == "[0]":
            node.append(child)
        else:
            node[part] = child
        node = child
    return body


def _send(api: Api, method: str, path: str, body: dict[str, Any], number: str) -> Any:
    path = path.replace("{model_id}", GENERAL).replace("{version_id}", "v")
    text = json.dumps(body).replace(json.dumps(_PLACEHOLDER), number)
    return api.client.request(method, path, content=text.encode(),
                              headers={**api.headers(), "Content-Type": "application/json"})


def _beyond_a_double() -> st.SearchStrategy[str]:
    """Numbers as JSON text that no double holds: huge integers (a 400-digit one among them), huge exponents."""
    huge = st.integers(min_value=309, max_value=6000).map(lambda n: "9" * n)
    exponent = st.integers(min_value=309, max_value=10**6).map(lambda e: f"1e{e}")
    fraction = st.integers(min_value=309, max_value=400).map(lambda n: "7" * n + ".5")
    return st.tuples(st.booleans(), huge | exponent | fraction).map(lambda t: ("-" if t[0] else "") + t[1])


def test_every_routes_number_fields_are_found() -> None:
    routes = {p for _, p, _ in NUMBER_FIELDS}
    assert {"/v2/inputs", "/v2/concepts", "/v2/searches", "/v2/models", "/v2/models/{model_id}/outputs",
            "/v2/models/{model_id}/feedback"} <= routes
    assert ("POST", "/v2/models/{model_id}/feedback",
            "input.data.regions[0].region_info.bounding_box.top_row") in NUMBER_FIELDS


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(NUMBER_FIELDS), number=_beyond_a_double())
def test_a_number_no_double_holds_is_refused_naming_its_field(api: Api, target: tuple[str, str, str],
                                                              number: str) -> None:
    method, path, field = target
    r = _send(api, method, path, _body_with(field), number)
    code, clarifai, details = status(r)
    assert (code, clarifai) == (400, 11102), (target, r.text)
    assert details.startswith(f"{field}: ") and "range of a double" in details, details


@pytest.mark.parametrize(("method", "path", "field"), [
    ("POST", "/v2/concepts", "concepts[0].value"),
    ("POST", "/v2/inputs", "inputs[0].data.concepts[0].value"),
    ("POST", "/v2/searches", "query.ands[0].input.data.concepts[0].value"),
    ("POST", "/v2/searches", "query.ands[0].output.data.concepts[0].value"),
    ("POST", "/v2/models", "model.output_info.data.concepts[0].value"),
    ("POST", "/v2/models/{model_id}/outputs", "model.output_info.output_config.select_concepts[0].value"),
])
def test_the_400_digit_integer_of_the_reports_is_refused(api: Api, method: str, path: str, field: str) -> None:
    body = _body_with(field)
    text = json.dumps(body).replace(json.dumps(_PLACEHOLDER), "1" + "0" * 399)
    r = api.client.request(method, path.replace("{model_id}", GENERAL), content=text.encode(),
                           headers={**api.headers(), "Content-Type": "application/json"})
    assert status(r)[:2] == (400, 11102) and status(r)[2].startswith(f"{field}: "), r.text


def test_a_huge_region_coordinate_is_refused_naming_it(api: Api) -> None:
    out = predict(api, FACE, png_bytes(size=(64, 64)))
    box = {"top_row": 0.1, "left_col": 0.1, "bottom_row": 0.5, "right_col": 0.5}
    body = region_body(out["id"], [region(box, "not_detected")])
    text = json.dumps(body).replace('"top_row": 0.1', '"top_row": 1' + "0" * 399)
    r = api.client.post(f"/v2/models/{FACE}/feedback", content=text.encode(),
                        headers={**api.headers(), "Content-Type": "application/json"})
    field = "input.data.regions[0].region_info.bounding_box.top_row"
    assert status(r)[:2] == (400, 11102) and status(r)[2].startswith(f"{field}: "), r.text


def test_a_huge_search_geo_value_is_refused_naming_it(api: Api) -> None:
    body = ('{"query": {"ands": [{"input": {"data": {"geo": {"geo_point": {"latitude": 1, "longitude": 1}, '
            '"geo_limit": {"type": "withinKilometers", "value": 1%s}}}}}]}}' % ("0" * 400))
    r = api.client.post("/v2/searches", content=body.encode(), headers={**api.headers(),
                                                                        "Content-Type": "application/json"})
    field = "query.ands[0].input.data.geo.geo_limit.value"
    assert status(r)[:2] == (400, 11102) and status(r)[2].startswith(f"{field}: "), r.text


# -- enums ------------------------------------------------------------------------------------------
_NAMES = {"annotation", "search_click", "event_type_not_set", "accurate", "misplaced", "not_detected",
          "false_positive"}


def _not_a_name_or_plain_integer() -> st.SearchStrategy[str]:
    """Text that is no enum name (of any of the enums) and not plain ASCII digits.

    No NUL: a URL holding one is refused before any route reads it (tests/api/test_error_shape.py).
    No lone surrogate: it cannot be sent as UTF-8 (tests/api/test_error_shape.py sends one escaped)."""
    return st.text(st.characters(exclude_characters="\0", exclude_categories=("Cs",)), max_size=8).filter(
        lambda s: s.strip().lower() not in _NAMES and not re.fullmatch(r"-?[0-9]+", s, re.ASCII))


@pytest.mark.parametrize("text", ["--2", "²", "٢", "2.0", " -1", "+2", "9" * 5000])
def test_event_type_text_that_is_not_a_plain_integer_is_refused(api: Api, text: str) -> None:
    out = predict(api, GENERAL, png_bytes())
    r = api.post(f"/models/{GENERAL}/feedback", concept_body(out["id"], [{"id": "cat"}], event_type=text))
    assert status(r)[:2] == (400, 11102) and status(r)[2].startswith("input.feedback_info.event_type: "), r.text


@pytest.mark.parametrize("value", [2, "2", "annotation", "ANNOTATION"])
def test_event_type_names_and_plain_integers_are_accepted(api: Api, value: Any) -> None:
    out = predict(api, GENERAL, png_bytes())
    r = api.post(f"/models/{GENERAL}/feedback", concept_body(out["id"], [{"id": "cat"}], event_type=value))
    assert r.status_code == 200, r.text


def _template(path: str, field: str) -> dict[str, Any]:
    """A body of ``path`` valid but for what its ids point to, holding ``field``."""
    if path.endswith("/searches/feedback"):
        return search_body("s", "i")
    if ".regions[" in field:
        return region_body("o", [region({"top_row": 0.1, "left_col": 0.1, "bottom_row": 0.5, "right_col": 0.5})])
    return concept_body("o", [{"id": "cat"}])


def _set(body: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    node: Any = body
    parts = field.replace("[0]", ".[0]").split(".")
    for part in parts[:-1]:
        node = node[0] if part == "[0]" else node[part]
    node[parts[-1]] = value
    return body


def test_every_routes_enum_fields_are_found() -> None:
    assert {(p, f) for _, p, f in ENUM_FIELDS} >= {
        ("/v2/models/{model_id}/feedback", "input.feedback_info.event_type"),
        ("/v2/models/{model_id}/feedback", "input.data.regions[0].region_info.feedback"),
        ("/v2/searches/feedback", "input.feedback_info.event_type")}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(ENUM_FIELDS), text=_not_a_name_or_plain_integer())
def test_enum_text_is_a_name_or_a_plain_integer_else_refused_naming_the_field(api: Api, target: tuple[str, str, str],
                                                                             text: str) -> None:
    method, path, field = target
    model = FACE if ".regions[" in field else GENERAL
    r = api.request(method, path.removeprefix("/v2").replace("{model_id}", model).replace("{version_id}", "v"),
                    _set(_template(path, field), field, text))
    assert status(r)[:2] == (400, 11102) and status(r)[2].startswith(f"{field}: "), (target, r.text)
    r = api.get("/feedback", params={"event_type": text})
    assert status(r)[:2] == (400, 11102) and status(r)[2].startswith("event_type: "), r.text


@pytest.mark.parametrize("text", ["--1", "²", "٢", "³"])
def test_feedback_listing_filter_refuses_enum_text_that_is_not_a_plain_integer(api: Api, text: str) -> None:
    r = api.get("/feedback", params={"event_type": text})
    assert status(r)[:2] == (400, 11102) and status(r)[2].startswith("event_type: "), r.text


def test_region_feedback_text_that_is_not_a_plain_integer_is_refused(api: Api) -> None:
    out = predict(api, FACE, png_bytes(size=(64, 64)))
    box = {"top_row": 0.1, "left_col": 0.1, "bottom_row": 0.5, "right_col": 0.5}
    for text in ("³", "--2", "٢"):
        r = api.post(f"/models/{FACE}/feedback", region_body(out["id"], [region(box, text)]))
        assert status(r)[:2] == (400, 11102), r.text
        assert status(r)[2].startswith("input.data.regions[0].region_info.feedback: "), r.text
    r = api.post(f"/models/{FACE}/feedback", region_body(out["id"], [region(box, "2")]))
    assert r.status_code == 200, r.text
