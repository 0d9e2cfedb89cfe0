"""Schemathesis fuzzing of every route in the app's own OpenAPI schema, in process.

Every operation (short, app-scoped and user-scoped paths) gets cases generated from its schema,
valid ones and invalid ones, sometimes aimed at real ids (the built-in models, a stored input,
a real prediction output and search), sent

- first with a key that must be refused (none, not ``Key ...``, unknown, revoked, without any
  scope): 401 / 403 with the right code;
- then with a valid full-scope key: no 5xx; every answer has a documented status code, the JSON
  content type and a body matching the documented schema; data that breaks the schema is refused.

Every refusal is the status envelope (``{"status": {"code", "description"}}``, no traceback) and
leaves the database exactly as it was (every row of every table compared before and after).

Image URLs never leave the process: the fetcher resolves no name and its transport answers 404.
``VISIONLOOP_FUZZ_EXAMPLES`` scales the examples per operation (default 4: twice that for
valid bodies, one fewer for the rest, 1-2 for the app-scoped copies: the file stays under 90 s on a busy two-core machine);
``VISIONLOOP_FUZZ_STATS=FILE`` appends each valid-key answer there, to see how deep the cases get.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import inspect, text

from tests.helpers import b64, png_bytes
from visionloop.config import load_settings
from visionloop.core import VisionLoop
from visionloop.http.app import create_app
from visionloop.inference.runtime import ModelRuntime
from visionloop.services.fetch import ImageFetcher

EXAMPLES = int(os.environ.get("VISIONLOOP_FUZZ_EXAMPLES", "4"))
STATS = os.environ.get("VISIONLOOP_FUZZ_STATS")  # a file to append "mode method path status body" lines to
APP, OTHER = "fuzz", "fuzz-other"
GENERAL = "aaa03c23b3724a16a56b629203edc62c"
FACE = "a403429f2ddf4b49b307e318f00e528b"
EMBED = "bbb5f41425b8468d9b7a554ff10f8581"
LOGO = "c443119bf2ed4da98487520d01a0b1e3"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
REFUSED = ["none", "scheme", "unknown", "revoked", "no-scope"]
PNG = b64(png_bytes((120, 60, 30), (24, 24)))


@dataclass
class Target:
    core: VisionLoop
    schema: Any
    keys: dict[str, str]
    ids: dict[str, list[str]] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)

    def fingerprint(self) -> str:
        """A digest of every row of every table: equal digests, unchanged database."""
        digest = hashlib.sha256()
        with self.core.db.engine.connect() as conn:
            for table in self.tables:
                rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
                digest.update(table.encode())
                for row in sorted(repr(tuple(r)) for r in rows):
                    digest.update(row.encode())
        return digest.hexdigest()


def _no_network(request: httpx.Request) -> httpx.Response:
    return httpx.Response(404)


def _resolve_nothing(host: str, port: int) -> list[str]:
    raise OSError(f"no DNS in the fuzz test ({host})")


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, runtime: ModelRuntime) -> Iterator[Target]:
    data = tmp_path_factory.mktemp("fuzz") / "data"
    cfg = load_settings({"data_dir": data, "feedback_rate_limit": 0, "fetch_timeout": 1.0}, environ={})
    core = VisionLoop(cfg, runtime)
    core.fetcher.close()
    core.fetcher = core.loader.fetcher = ImageFetcher(timeout=1.0, max_bytes=cfg.max_image_bytes, max_redirects=1,
                                                      transport=httpx.MockTransport(_no_network),
                                                      resolver=_resolve_nothing)
    try:
        core.apps.create_app(APP)
        core.apps.create_app(OTHER)
        _, full = core.apps.create_key(APP)
        _, no_scope = core.apps.create_key(APP, ())
        revoked_info, revoked = core.apps.create_key(APP)
        core.apps.revoke_key(revoked_info.id)
        _, other = core.apps.create_key(OTHER)
        app = create_app(cfg, core)
        target = Target(core, schemathesis.openapi.from_asgi("/openapi.json", app),
                        {"full": full, "no-scope": no_scope, "revoked": revoked, "other": other})
        target.ids = _seed(app, full)
        target.tables = sorted(t for t in inspect(core.db.engine).get_table_names() if t != "alembic_version")
        yield target
    finally:
        core.close()


def _seed(app: Any, key: str) -> dict[str, list[str]]:
    """Real ids for the fuzzer to aim at: inputs, concepts, an output, a search, model versions."""
    from fastapi.testclient import TestClient

    auth = {"Authorization": f"Key {key}"}
    with TestClient(app) as c:
        r = c.post("/v2/inputs", headers=auth, json={"inputs": [
            {"id": f"in-{i}", "data": {"image": {"base64": b64(png_bytes(color))}, "concepts": [{"id": name}]}}
            for i, (color, name) in enumerate((((250, 10, 10), "red"), ((10, 10, 250), "blue")))]})
        assert r.status_code == 200, r.text
        r = c.post(f"/v2/models/{GENERAL}/outputs", headers=auth,
                   json={"inputs": [{"data": {"image": {"base64": b64(png_bytes((10, 250, 10)))}}}]})
        assert r.status_code == 200, r.text
        output_id = r.json()["outputs"][0]["id"]
        r = c.post("/v2/searches", headers=auth, json={"query": {"ands": [{"output": {"input": {"id": "in-0"}}}]}})
        assert r.status_code == 200, r.text
        search_id = r.json()["id"]
        r = c.post(f"/v2/models/{GENERAL}/feedback", headers=auth, json={"input": {
            "data": {"concepts": [{"id": "green", "value": True}]},
            "feedback_info": {"event_type": "annotation", "output_id": output_id, "end_user_id": "u1"}}})
        assert r.status_code == 200, r.text
        versions = [c.get(f"/v2/models/{m}", headers=auth).json()["model"]["model_version"]["id"]
                    for m in (GENERAL, FACE)]
    return {"input_id": ["in-0", "in-1"], "concept_id": ["red", "blue", "green"],
            "model_id": [GENERAL, FACE, EMBED, LOGO], "version_id": versions, "output_id": [output_id],
            "search_id": [search_id], "end_user_id": ["u1"], "user_id": ["me"], "app_id": [APP]}


def _schema_paths() -> dict[str, Any]:
    cfg = load_settings({"data_dir": Path("/nonexistent/unused")}, environ={})
    return create_app(cfg).openapi()["paths"]


PATHS = _schema_paths()  # read at collection time: every operation is a test, new routes included
OPERATIONS = [(method.upper(), path) for path, ops in PATHS.items() for method in sorted(ops)]
BODY_OPERATIONS = [(m, p) for m, p in OPERATIONS if "requestBody" in PATHS[p][m.lower()] and "{app_id}" not in p]


def _negatable(method: str, path: str) -> bool:
    """Whether the schema constrains anything a negative case could break (a path segment is any string);
    the app-scoped copies share the short path's handler and schema, so only the short path gets them."""
    op = PATHS[path][method.lower()]
    return not path.startswith("/v2/users/") and (
        "requestBody" in op or any(p.get("in") != "path" for p in op.get("parameters", [])))


FUZZ_CASES = [(m, p, mode) for m, p in OPERATIONS for mode in ("positive", "negative")
              if mode == "positive" or _negatable(m, p)]


def _cases(target: Target, method: str, path: str, mode: schemathesis.GenerationMode,
           headers: dict[str, str] | None = None) -> st.SearchStrategy:
    """Cases as the schema makes them, or with real ids in the path, real images and real feedback targets."""
    op = target.schema[path][method]
    names = [p["name"] for p in op.definition.raw.get("parameters", []) if p.get("in") == "path"]
    aimed = st.fixed_dictionaries({n: st.sampled_from(target.ids.get(n, ["x"])) for n in names})
    strategies = [op.as_strategy(generation_mode=mode, headers=headers)]
    if names:
        strategies.append(aimed.flatmap(
            lambda params: op.as_strategy(generation_mode=mode, path_parameters=params, headers=headers)))
    cases = st.one_of(strategies)
    if mode is schemathesis.GenerationMode.POSITIVE and "requestBody" in op.definition.raw:
        cases = st.tuples(cases, st.booleans()).map(_with_real_images)
        if path.endswith("/feedback"):
            refs = st.sampled_from(target.ids["output_id"] + target.ids["search_id"] + [None])
            cases = st.tuples(cases, refs).map(_with_reference)
    return cases


def _with_real_images(pair: tuple[Any, bool]) -> Any:
    """Half the time every input in the body gets a real PNG, so requests get past image decoding."""
    case, real = pair

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "data" and isinstance(value, dict) and "regions" not in value:
                    value["image"] = {"base64": PNG}
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    if real and isinstance(case.body, dict) and ("inputs" in case.body or "input" in case.body):
        walk(case.body.get("inputs") or case.body.get("input"))
    return case


def _with_reference(pair: tuple[Any, str | None]) -> Any:
    """Point a generated feedback body at a real output or search, so it gets past the id lookup."""
    case, ref = pair
    info = case.body.get("input", {}).get("feedback_info") if isinstance(case.body, dict) else None
    if ref is not None and isinstance(info, dict):
        info["search_id" if "searches" in case.path else "output_id"] = ref
    return case


def assert_envelope(response: Any) -> dict:
    ctype = response.headers.get("content-type") or [""]  # schemathesis keeps every value of a header
    assert ctype[0].startswith("application/json"), response.text[:300]
    body = response.json()
    status = body["status"]
    assert isinstance(status["code"], int) and status["code"] != 10000
    assert isinstance(status["description"], str) and status["description"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return status


def _examples(method: str, path: str, mode: str) -> int:
    """Bodies get the most examples; an app-scoped copy runs the same handler as its short path."""
    if path.startswith("/v2/users/"):
        return 2 if method != "GET" else 1
    if method != "GET" and mode == "positive":
        return 2 * EXAMPLES
    return max(2, EXAMPLES - 1)


def _refused_headers(target: Target, kind: str) -> dict[str, str]:
    return {"none": {}, "scheme": {"Authorization": f"Bearer {target.keys['full']}"},
            "unknown": {"Authorization": "Key " + "0" * 32},
            "revoked": {"Authorization": f"Key {target.keys['revoked']}"},
            "no-scope": {"Authorization": f"Key {target.keys['no-scope']}"}}[kind]


EXPECTED_REFUSAL = {"none": (401, 11009), "scheme": (401, 11008), "unknown": (401, 11009), "revoked": (401, 11008),
                    "no-scope": (403, 11007)}


def _refused_before_auth(kind: str, response: Any, status: dict) -> bool:
    """Refusals that rightly come before the key is looked at: a body that is not JSON (11100), a NUL in
    the URL (11102), a path that names no route once decoded (11101); and for a scope-less key, an
    app-scoped path naming another app (the app is checked before the scope)."""
    got, details = (response.status_code, status["code"]), status.get("details", "")
    return (got == (400, 11100) or (got == (400, 11102) and "NUL" in details)
            or (got == (404, 11101) and details.startswith("no route"))
            or (kind == "no-scope" and got == (404, 11101) and details.endswith("does not exist for this API key")))


@pytest.mark.parametrize("method,path,mode", FUZZ_CASES, ids=[f"{m} {p} {mode}" for m, p, mode in FUZZ_CASES])
def test_fuzz(target: Target, method: str, path: str, mode: str) -> None:
    """Each generated request is sent twice: with a key that must be refused, then with the valid key."""
    generation = schemathesis.GenerationMode(mode)
    checks = CHECKS + ([negative_data_rejection] if generation is schemathesis.GenerationMode.NEGATIVE else [])
    valid = {"Authorization": f"Key {target.keys['full']}"}

    @settings(max_examples=_examples(method, path, mode), deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=_cases(target, method, path, generation, valid), kind=st.sampled_from(REFUSED))
    def run(case: Any, kind: str) -> None:
        # 1. a key that must be refused: 401/403 (or an earlier refusal), the envelope, nothing changed
        own = dict(case.headers or {})
        case.headers = {k: v for k, v in own.items() if k.lower() != "authorization"}
        before = target.fingerprint()
        response = case.call(headers=_refused_headers(target, kind))
        status = assert_envelope(response)
        if not _refused_before_auth(kind, response, status):
            assert (response.status_code, status["code"]) == EXPECTED_REFUSAL[kind], (kind, case.formatted_path,
                                                                                      response.text)
        assert target.fingerprint() == before, f"a refused {method} {case.formatted_path} changed the database"
        # 2. the valid key: no 5xx, as documented; a refusal is the envelope and changes nothing
        case.headers = own
        response = case.call(headers=valid)
        if STATS:
            with open(STATS, "a") as f:
                f.write(f"{mode}\t{method}\t{path}\t{response.status_code}\t{response.text[:200]}\n")
        case.validate_response(response, checks=checks, headers=valid)
        if response.status_code >= 300:
            assert_envelope(response)
            assert target.fingerprint() == before, f"a refused {method} {case.formatted_path} changed the database"

    run()


@pytest.mark.parametrize("method,path", BODY_OPERATIONS, ids=[f"{m} {p}" for m, p in BODY_OPERATIONS])
def test_a_body_that_is_not_utf8_is_a_bad_request_format(target: Target, method: str, path: str) -> None:
    """Found by this fuzzer: FastAPI's own 400 for an unreadable body came out as 10020 FAILURE."""
    from fastapi.testclient import TestClient
    url = path.replace("{user_id}", "me").replace("{app_id}", APP)
    url = url.replace("{model_id}", GENERAL).replace("{version_id}", target.ids["version_id"][0])
    url = url.replace("{input_id}", "in-0").replace("{concept_id}", "red")
    before = target.fingerprint()
    with TestClient(target.schema.app, raise_server_exceptions=False) as c:
        r = c.request(method, url, content=b'{"inputs": "\xff\xfe"}',
                      headers={"Authorization": f"Key {target.keys['full']}", "Content-Type": "application/json"})
    assert r.status_code in (400, 404) and r.json()["status"]["code"] in (11100, 11101), (url, r.text)
    assert target.fingerprint() == before


def test_an_id_with_a_trailing_newline_is_refused(target: Target) -> None:
    """Found by reading the schema's pattern against visionloop/ids.py (JSON Schema's $ is the end of the text)."""
    from fastapi.testclient import TestClient

    with TestClient(target.schema.app, raise_server_exceptions=False) as c:
        r = c.post("/v2/concepts", json={"concepts": [{"id": "newline\n"}]},
                   headers={"Authorization": f"Key {target.keys['full']}"})
    assert r.status_code == 400, r.text


def test_every_route_is_in_the_schema_and_fuzzed() -> None:
    """The parametrisation walks the schema, so a new route is fuzzed without editing this file — unless
    it were left out of the schema: every route of the app must be there, and have a positive case."""
    from fastapi.routing import APIRoute

    from visionloop.http.app import APP_SCOPED, ROUTERS
    from visionloop.http.routes.models import user_router

    mounted = [(router, prefix) for router in ROUTERS for prefix in ("/v2", APP_SCOPED)]
    routes = {(m, prefix + r.path) for router, prefix in [*mounted, (user_router, "/v2/users/{user_id}")]
              for r in router.routes if isinstance(r, APIRoute) for m in r.methods}
    assert len(routes) >= 50 and routes == set(OPERATIONS)
    assert {(m, p) for m, p, mode in FUZZ_CASES if mode == "positive"} == routes


# -- property tests of the wire parsers the schema cannot describe ------------------------------------
# (images: tests/unit/test_images.py; feedback bodies: tests/unit/test_feedback_parse.py)
JSON_SCALARS = (st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=True, allow_infinity=True)
                | st.text(max_size=6) | st.sampled_from(["", "cat", "input", "output", "ands", "id"]))
JSON = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.sampled_from(["ands", "input", "output", "data", "concepts", "id", "name",
                                                       "value", "metadata", "image", "url", "base64", "x"]) | st.text(
                        max_size=3), inner, max_size=4), max_leaves=20)
CONCEPT_VALUES = st.none() | st.booleans() | st.integers(-2, 2) | st.floats(allow_nan=True, allow_infinity=True) \
    | st.text(max_size=3) | st.lists(st.booleans(), max_size=1)
REFS = st.none() | st.sampled_from(["", "cat", "dog"]) | st.integers(0, 2) | st.lists(st.just("cat"), max_size=1)
CONCEPTS = st.none() | JSON_SCALARS | st.lists(st.none() | JSON_SCALARS | st.fixed_dictionaries(
    {}, optional={"id": REFS, "name": REFS, "value": CONCEPT_VALUES}), max_size=3)
IMAGES = st.none() | JSON_SCALARS | st.fixed_dictionaries({}, optional={
    "url": st.none() | st.sampled_from(["", "https://example.com/a.jpg"]) | st.integers(0, 1),
    "base64": st.none() | st.sampled_from(["", PNG, "not base64!"]) | st.integers(0, 1)})
TERMS = st.none() | JSON_SCALARS | st.fixed_dictionaries({}, optional={
    "input": st.none() | JSON_SCALARS | st.fixed_dictionaries({}, optional={"data": st.none() | st.fixed_dictionaries(
        {}, optional={"concepts": CONCEPTS, "metadata": JSON, "image": IMAGES})}),
    "output": st.none() | JSON_SCALARS | st.fixed_dictionaries({}, optional={
        "data": st.none() | st.fixed_dictionaries({}, optional={"concepts": CONCEPTS}),
        "input": st.none() | JSON_SCALARS | st.fixed_dictionaries({}, optional={
            "id": REFS, "data": st.none() | st.fixed_dictionaries({}, optional={"image": IMAGES})})}),
    "unknown": JSON_SCALARS})
QUERIES = JSON | st.fixed_dictionaries({}, optional={"ands": JSON_SCALARS | st.lists(TERMS, max_size=3)})
PARSER_SETTINGS = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                           suppress_health_check=[HealthCheck.too_slow])


@PARSER_SETTINGS
@given(QUERIES)
def test_any_json_query_parses_or_is_a_search_invalid(query: Any) -> None:
    """parse_query is total: terms, or SearchInvalid (40002) naming the path, or 11102 for a query over the
    cap on terms; nothing else escapes."""
    from visionloop import errors
    from visionloop.http.search_query import parse_query
    from visionloop.services.search import ConceptTerm, MetadataTerm, UrlTerm, VisualTerm

    try:
        terms = parse_query(query)
    except errors.ApiError as exc:
        assert exc.code == 40002 or (exc.code == 11102 and "at most" in exc.details), exc.details
        assert exc.details.startswith("query"), exc.details
        return
    assert terms and all(isinstance(t, ConceptTerm | MetadataTerm | UrlTerm | VisualTerm) for t in terms)
    for t in terms:
        if isinstance(t, ConceptTerm):
            assert isinstance(t.ref, str) and t.ref
        if isinstance(t, VisualTerm):
            assert (t.source is None) != (t.input_id is None)


@PARSER_SETTINGS
@given(st.lists(st.sampled_from(["cat", "dog"]), min_size=1, max_size=3), CONCEPT_VALUES,
       st.sampled_from(["input", "output"]))
def test_concept_terms_read_values_as_the_clients_send_them(refs: list[str], value: Any, where: str) -> None:
    """true/false, 1.0/0.0 and null (present) as in DESIGN.md (../shared/, beside the repository);
    anything else outside [0, 1] is refused."""
    import math

    from visionloop import errors
    from visionloop.http.search_query import parse_query

    query = {"ands": [{where: {"data": {"concepts": [{"id": r, "value": value} for r in refs]}}}]}
    valid = value is None or isinstance(value, bool) or (
        isinstance(value, int | float) and math.isfinite(value) and 0 <= value <= 1)
    if not valid:
        with pytest.raises(errors.SearchInvalid):
            parse_query(query)
        return
    terms = parse_query(query)
    present = True if value is None else float(value) >= 0.5
    assert [(t.ref, t.present, t.predicted) for t in terms] == [(r, present, where == "output") for r in refs]


def test_nulls_are_absent_in_queries() -> None:
    from visionloop.http.search_query import parse_query
    from visionloop.services.search import VisualTerm

    terms = parse_query({"ands": [{"input": None, "output": {"data": None, "input": {
        "id": "in-0", "data": {"image": {"url": None, "base64": None}}}}}], "user_app_id": None})
    assert terms == [VisualTerm(source=None, input_id="in-0")]


KNOWN_FIELDS = {"inputs", "id", "data", "image", "url", "base64", "allow_duplicate_url", "concepts", "name", "value",
                "language", "app_id", "metadata", "regions"}
WIRE_MODELS = ["PostInputsRequest", "PatchInputsRequest", "DeleteInputsRequest", "ConceptsRequest",
               "ConceptSearchRequest", "PredictRequest", "ModelSearchRequest", "SearchRequest", "TrainRequest"]


@PARSER_SETTINGS
@given(st.sampled_from(WIRE_MODELS), JSON | st.fixed_dictionaries({}, optional={
    "inputs": st.lists(st.fixed_dictionaries({}, optional={"id": REFS, "data": st.none() | st.fixed_dictionaries(
        {}, optional={"concepts": CONCEPTS, "image": IMAGES, "metadata": JSON})}), max_size=2) | JSON_SCALARS,
    "concepts": CONCEPTS, "ids": JSON, "query": JSON, "model": JSON, "pagination": JSON, "user_app_id": JSON}))
def test_any_json_body_validates_or_is_an_11100_or_11102(model: str, body: Any) -> None:
    """The wire schemas are total over JSON: a model, or a RequestValidationError the one handler makes
    11100 (not an object) or 11102 (naming a field); concept values always end up within [0, 1]."""
    from fastapi.exceptions import RequestValidationError
    from pydantic import ValidationError

    from visionloop.http import schemas
    from visionloop.http.errors import validation_error

    cls = getattr(schemas, model)
    try:
        parsed = cls.model_validate(body)
    except ValidationError as exc:
        errs = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        if not isinstance(body, dict):
            errs = [{"type": "model_attributes_type", "loc": ("body",), "msg": "not an object"}]
        api = validation_error(RequestValidationError(errs))
        assert api.code in (11100, 11102) and api.http_status == 400 and api.details
        return
    fields = type(parsed).model_fields  # not getattr alone: unknown fields are set aside as attributes too
    for item in parsed.inputs if "inputs" in fields else []:
        assert all(0.0 <= c.value <= 1.0 for c in item.data.concepts)
    for c in parsed.concepts if "concepts" in fields else []:
        assert 0.0 <= c.value <= 1.0


@pytest.mark.parametrize("value,expected", [(True, 1.0), (False, 0.0), (1, 1.0), (0, 0.0), (0.25, 0.25), (None, 1.0),
                                            (1.5, None), (-0.1, None), (float("nan"), None), ("1", None),
                                            ([True], None)])
def test_concept_values_of_every_client_in_the_schemas(value: Any, expected: float | None) -> None:
    from pydantic import ValidationError

    from visionloop.http.schemas import ConceptIn

    if expected is None:
        with pytest.raises(ValidationError):
            ConceptIn.model_validate({"id": "x", "value": value})
    else:
        assert ConceptIn.model_validate({"id": "x", "value": value}).value == expected


@PARSER_SETTINGS
@given(st.dictionaries(st.text(max_size=8).filter(lambda k: k not in KNOWN_FIELDS) | st.sampled_from(
    ["user_app_id", "status", "created_at", "model_version"]), JSON, max_size=3))
def test_nulls_and_unknown_fields_change_nothing(extra: dict[str, Any]) -> None:
    """Unknown fields (user_app_id, status, ...) are ignored at every level (set aside, to be named if
    something required is missing); null optional fields are absent."""
    from visionloop.http.routes.inputs import to_new_input
    from visionloop.http.schemas import PostInputsRequest

    plain = {"inputs": [{"id": "a", "data": {"image": {"base64": PNG}, "concepts": [{"id": "cat"}]}}]}
    noisy = {"inputs": [{"id": "a", "data": {"image": {"base64": PNG, "url": None, "allow_duplicate_url": None,
                                                        **extra},
                                             "concepts": [{"id": "cat", "name": None, "value": None,
                                                           "language": None, **extra}],
                                             "metadata": None, **extra}, **extra}], "user_app_id": None, **extra}
    parsed, reference = (PostInputsRequest.model_validate(body) for body in (noisy, plain))
    assert to_new_input(0, parsed.inputs[0]) == to_new_input(0, reference.inputs[0])  # what the service is given
    assert set(parsed.inputs[0].data.image.unknown_fields) == set(extra)
