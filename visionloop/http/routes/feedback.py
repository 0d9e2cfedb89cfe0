"""Feedback: on predictions (concepts or regions), on search results, and the log for operators.

- ``POST /models/{model_id}/feedback``, ``POST /models/{model_id}/versions/{version_id}/feedback``
- ``POST /searches/feedback``
- ``GET /feedback`` (filters, paginated) and ``DELETE /feedback?end_user_id=`` (erasure), which
  need the ``feedback_admin`` scope: a key that may send feedback may not read or erase others'.

Bodies are parsed by :mod:`visionloop.services.feedback.parse` (codes tabled in
:mod:`visionloop.services.feedback.record`). Feedback is never metered as usage.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from visionloop import errors
from visionloop.core import VisionLoop
from visionloop.http import wire
from visionloop.http.deps import CoreDep, FeedbackAdminCaller, PageDep, authenticate
from visionloop.http.fast_lane import fast
from visionloop.http.strict_json import StrictJSONRoute, parse_json
from visionloop.http.unknown_fields import name_unknown_fields
from visionloop.services.apps import Caller

router = APIRouter(tags=["feedback"], route_class=StrictJSONRoute)

_CONCEPTS_EXAMPLE = {"input": {"id": "my-input", "data": {
    "image": {"url": "https://samples.clarifai.com/dog.tiff"},
    "concepts": [{"id": "dog", "value": True}, {"id": "cat", "value": False}]},
    "feedback_info": {"event_type": "annotation", "output_id": "<id of a predict output>",
                      "end_user_id": "user-1", "session_id": "session-1"}}}
_REGIONS_EXAMPLE = {"input": {"id": "my-input", "data": {"regions": [
    {"id": "<id of a predicted region>", "region_info": {"feedback": "accurate"},
     "data": {"concepts": [{"id": "face", "value": True}]}},
    {"region_info": {"bounding_box": {"top_row": 0.2, "left_col": 0.1, "bottom_row": 0.3, "right_col": 0.2},
                     "feedback": "not_detected"}, "data": {"concepts": [{"id": "face", "value": True}]}}]},
    "feedback_info": {"event_type": "annotation", "output_id": "<id of a predict output>"}}}
_SEARCH_EXAMPLE = {"input": {"id": "<id of the clicked hit's input>", "feedback_info": {
    "event_type": "search_click", "search_id": "<id of a search>", "end_user_id": "user-1",
    "session_id": "session-1"}}}

# The bodies are parsed by hand (services/feedback/parse.py, lenient where the clients differ); these
# JSON Schemas document what that parser accepts so that clients and fuzzers know the shape.
_NULL = {"type": "null"}
_TEXT = {"anyOf": [{"type": "string", "maxLength": 255}, _NULL]}
_ID = {"type": "string", "minLength": 1, "maxLength": 255}
_PRESENCE = {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}, _NULL],
             "description": "true/false (or 1/0): is the concept there; missing or null means true"}
_CONCEPT = {"type": "object", "properties": {"id": _TEXT, "name": _TEXT, "value": _PRESENCE},
            "anyOf": [{"required": ["id"], "properties": {"id": _ID}},
                      {"required": ["name"], "properties": {"name": _ID}}]}
_CONCEPTS = {"type": "array", "minItems": 1, "maxItems": 1000, "items": _CONCEPT}
_COORDINATE = {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, _NULL]}
_REGION = {"type": "object", "properties": {
    "id": _TEXT,
    "region_info": {"anyOf": [{"type": "object", "properties": {
        "bounding_box": {"anyOf": [{"type": "object", "properties": {
            name: _COORDINATE for name in ("top_row", "left_col", "bottom_row", "right_col")}}, _NULL]},
        "feedback": {"anyOf": [{"enum": ["accurate", "misplaced", "not_detected", "false_positive", 0, 1, 2, 3]},
                               _NULL]}}}, _NULL]},
    "data": {"anyOf": [{"type": "object", "properties": {"concepts": {"anyOf": [_CONCEPTS, _NULL]}}}, _NULL]}}}
_IMAGE = {"anyOf": [{"type": "object", "properties": {"url": {"anyOf": [{"type": "string"}, _NULL]},
                                                      "base64": {"anyOf": [{"type": "string"}, _NULL]}}}, _NULL]}


def _feedback_schema(event_type: str, number: int, ref: str, *, model: bool) -> dict[str, Any]:
    info = {"type": "object", "required": ["event_type", ref], "properties": {
        "event_type": {"enum": [event_type, number]}, "output_id": _TEXT, "search_id": _TEXT, ref: _ID,
        "end_user_id": _TEXT, "session_id": _TEXT}}
    if not model:  # a click names the clicked input; nothing else is read
        return {"type": "object", "required": ["input"], "properties": {"input": {
            "type": "object", "required": ["id", "feedback_info"], "properties": {"id": _ID, "feedback_info": info}}}}
    data = {"type": "object", "properties": {"image": _IMAGE}, "oneOf": [  # concepts or regions, not both
        {"required": ["concepts"], "properties": {"concepts": _CONCEPTS, "regions": {"maxItems": 0}}},
        {"required": ["regions"], "properties": {"regions": {"type": "array", "minItems": 1, "maxItems": 1000,
                                                             "items": _REGION}, "concepts": {"maxItems": 0}}}]}
    return {"type": "object", "required": ["input"], "properties": {"input": {
        "type": "object", "required": ["data", "feedback_info"],
        "properties": {"id": _TEXT, "data": data, "feedback_info": info}}}}


SCOPE = "feedback"


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": {"type": "string", "title": name.replace("_", " ").title()}}


_MODEL_ID = _path_parameter("model_id", "The model's id (or its name)")
_VERSION_ID = _path_parameter("version_id", "One version of the model")


def _documented(schema: dict[str, Any], description: str, examples: dict[str, Any],
                parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """The OpenAPI of a route that reads its own path, body and key (see :func:`_ingest`);
    ``x-scope`` names the key scope it requires, as a ``scoped`` dependency would."""
    body = {"schema": schema, "examples": {name: {"value": value} for name, value in examples.items()}}
    return {"parameters": parameters,
            "requestBody": {"required": True, "description": description, "content": {"application/json": body}},
        "security": [{"ApiKey": []}], "x-scope": SCOPE}


_MODEL_SCHEMA = _feedback_schema("annotation", 2, "output_id", model=True)
_SEARCH_SCHEMA = _feedback_schema("search_click", 1, "search_id", model=False)
_MODEL_FEEDBACK = _documented(
    _MODEL_SCHEMA,
    "Feedback on one prediction output: data.concepts for concept models, data.regions for detection models; "
    "feedback_info.event_type 'annotation' and output_id are required.",
    {"concepts": _CONCEPTS_EXAMPLE, "regions": _REGIONS_EXAMPLE}, [_MODEL_ID])
_VERSION_FEEDBACK = {**_MODEL_FEEDBACK, "parameters": [_MODEL_ID, _VERSION_ID]}
_SEARCH_FEEDBACK = _documented(
    _SEARCH_SCHEMA,
    "A click on a search hit: input.id is the clicked input; feedback_info.event_type 'search_click' and "
    "search_id are required.",
    {"click": _SEARCH_EXAMPLE}, [])
_OK = json.dumps(wire.ok()).encode()

Record = Callable[[VisionLoop, Caller, Any], object]


async def _ingest(request: Request, record: Record, schema: dict[str, Any]) -> Response:
    """Feedback is the hot write path. The body is read on the event loop; the key, its scope, the
    JSON and the recording are then one worker-thread call (as dependencies, each check would be
    a hop of its own, which costs more than the check). The key is still checked before the body.
    The endpoints take only the Request, so :mod:`visionloop.http.fast_lane` serves them. They
    share a few worker threads of their own (:func:`visionloop.http.threads.feedback_pool`). A refusal
    for a missing field names the unknown fields beside it, as ``schema`` (what the parser reads) tells."""
    raw = await request.body()
    core: VisionLoop = request.app.state.core

    def work() -> None:
        caller = authenticate(request, core)
        caller.require(SCOPE)
        body = parse_json(raw)
        try:
            record(core, caller, body)
        except errors.ApiError as exc:
            name_unknown_fields(exc, body, schema=schema)
            raise

    await asyncio.get_running_loop().run_in_executor(request.app.state.feedback_pool, work)
    return Response(_OK, media_type="application/json")


@router.post("/models/{model_id}/feedback", openapi_extra=_MODEL_FEEDBACK)
@fast
async def model_feedback(request: Request) -> Response:
    model_id = request.path_params["model_id"]
    return await _ingest(request, lambda core, caller, body: core.feedback.model_feedback(caller, model_id, None, body),
                         _MODEL_SCHEMA)


@router.post("/models/{model_id}/versions/{version_id}/feedback", openapi_extra=_VERSION_FEEDBACK)
@fast
async def model_version_feedback(request: Request) -> Response:
    model_id, version_id = request.path_params["model_id"], request.path_params["version_id"]
    return await _ingest(request, lambda core, caller, body: core.feedback.model_feedback(caller, model_id, version_id,
                                                                                          body), _MODEL_SCHEMA)


@router.post("/searches/feedback", openapi_extra=_SEARCH_FEEDBACK)
@fast
async def search_feedback(request: Request) -> Response:
    return await _ingest(request, lambda core, caller, body: core.feedback.search_feedback(caller, body),
                         _SEARCH_SCHEMA)


Text = Annotated[str | None, Query(max_length=255)]


@router.get("/feedback")
def list_feedback(caller: FeedbackAdminCaller, core: CoreDep, page: PageDep, model_id: Text = None,
                  version_id: Text = None, event_type: Text = None, end_user_id: Text = None,
                  session_id: Text = None, output_id: Text = None, search_id: Text = None,
                  created_after: Text = None, created_before: Text = None) -> dict[str, Any]:
    """The app's feedback events, oldest first; every filter is optional (times are ISO 8601, UTC if bare)."""
    flt = core.feedback.filter_of(caller.app_id, model_id=model_id, version_id=version_id, event_type=event_type,
                                  end_user_id=end_user_id, session_id=session_id, output_id=output_id,
                                  search_id=search_id, created_after=created_after, created_before=created_before)
    return wire.ok(feedback=core.feedback.log.list(caller.app_id, flt, page))


@router.delete("/feedback")
def erase_feedback(caller: FeedbackAdminCaller, core: CoreDep, end_user_id: Text = None) -> dict[str, Any]:
    """Erase every feedback event of one end user of the app (privacy); derived labels are rebuilt."""
    if not end_user_id:
        raise errors.InvalidRequest("end_user_id: required; feedback is erased per end user "
                                    "(DELETE /v2/feedback?end_user_id=...)")
    erasure = core.feedback.log.erase_end_user(caller.app_id, end_user_id)
    return wire.ok(erased=erasure.count)
