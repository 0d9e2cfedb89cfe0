"""Feedback: on predictions (concepts or regions), on search results, and the log for operators.

- ``POST /models/{model_id}/feedback``, ``POST /models/{model_id}/versions/{version_id}/feedback``
- ``POST /searches/feedback``
- ``GET /feedback`` (filters, paginated) and ``DELETE /feedback?end_user_id=`` (erasure), which
  need the ``feedback_admin`` scope: a key that may send feedback may not read or erase others'.

Bodies are parsed by :mod:`visionloop.services.feedback.parse` (codes tabled in
:mod:`visionloop.services.feedback.record`) and documented by :mod:`visionloop.http.feedback_schema`.
Feedback is never metered as usage.
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
from visionloop.http.feedback_schema import (
    CONCEPTS_EXAMPLE,
    MODEL_SCHEMA,
    REGIONS_EXAMPLE,
    SEARCH_EXAMPLE,
    SEARCH_SCHEMA,
)
from visionloop.http.strict_json import StrictJSONRoute, parse_json
from visionloop.http.unknown_fields import name_unknown_fields
from visionloop.services.apps import Caller

router = APIRouter(tags=["feedback"], route_class=StrictJSONRoute)

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


_MODEL_FEEDBACK = _documented(
    MODEL_SCHEMA,
    "Feedback on one prediction output: data.concepts for concept models, data.regions for detection models; "
    "feedback_info.event_type 'annotation' and output_id are required.",
    {"concepts": CONCEPTS_EXAMPLE, "regions": REGIONS_EXAMPLE}, [_MODEL_ID])
_VERSION_FEEDBACK = {**_MODEL_FEEDBACK, "parameters": [_MODEL_ID, _VERSION_ID]}
_SEARCH_FEEDBACK = _documented(
    SEARCH_SCHEMA,
    "A click on a search hit: input.id is the clicked input; feedback_info.event_type 'search_click' and "
    "search_id are required.",
    {"click": SEARCH_EXAMPLE}, [])
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
                         MODEL_SCHEMA)


@router.post("/models/{model_id}/versions/{version_id}/feedback", openapi_extra=_VERSION_FEEDBACK)
@fast
async def model_version_feedback(request: Request) -> Response:
    model_id, version_id = request.path_params["model_id"], request.path_params["version_id"]
    return await _ingest(request, lambda core, caller, body: core.feedback.model_feedback(caller, model_id, version_id,
                                                                                          body), MODEL_SCHEMA)


@router.post("/searches/feedback", openapi_extra=_SEARCH_FEEDBACK)
@fast
async def search_feedback(request: Request) -> Response:
    return await _ingest(request, lambda core, caller, body: core.feedback.search_feedback(caller, body),
                         SEARCH_SCHEMA)


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
