"""/console/feedback: the app's feedback log, newest first, filtered as ``GET /v2/feedback`` filters
it (model, version, event type, end user, session, time), with unlinked events marked and each
event's image when the key may see inputs; and the selection as a JSON Lines download. Needs
``feedback_admin``, as the API's log does."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response, StreamingResponse

from visionloop.http.console.render import SECURITY_HEADERS, ConsoleRoute, page
from visionloop.http.console.session import SessionDep, need
from visionloop.http.deps import BaseUrlDep, CoreDep
from visionloop.http.wire import image_url
from visionloop.services.feedback.export import jsonl_lines
from visionloop.services.paging import Page

router = APIRouter(route_class=ConsoleRoute)
FILTERS = ("model_id", "version_id", "event_type", "end_user_id", "session_id", "created_after", "created_before")
PER_PAGE = 50


def _filters(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip()[:255] for name in FILTERS}


@router.get("/feedback")
def feedback_page(request: Request, session: SessionDep, core: CoreDep, base_url: BaseUrlDep) -> Response:
    need(session, "feedback_admin", "The feedback log")
    app_id = session.caller.app_id
    chosen = _filters(request)
    flt = core.feedback.filter_of(app_id, **{k: v or None for k, v in chosen.items()})
    page_no = Page.of(request.query_params.get("page"), None, default=PER_PAGE, cap=PER_PAGE)
    events = core.feedback.log.list(app_id, flt, page_no, newest_first=True)
    images: dict[str, str] = {}
    if "inputs" in session.caller.scopes:
        shown = core.console.stored_inputs(app_id, sorted({e["input_id"] for e in events if e["input_id"]}))
        images = {i: image_url(base_url, i) + "?size=thumbnail" for i in shown}
    kept = {k: v for k, v in chosen.items() if v}
    return page(request, "feedback.html", {
        "events": [_row(e) for e in events], "images": images, "chosen": chosen, "page_no": page_no.page,
        "export": "/console/feedback/export?" + urlencode(kept),
        "newer": _link(kept, page_no.page - 1) if page_no.page > 1 else None,
        "older": _link(kept, page_no.page + 1) if len(events) == PER_PAGE else None})


@router.get("/feedback/export")
def export(request: Request, session: SessionDep, core: CoreDep) -> Response:
    """Every event the filters select, oldest first, as JSON Lines (the records ``GET /v2/feedback``
    lists and ``visionloop feedback export`` writes), streamed as it is read."""
    need(session, "feedback_admin", "Exporting the feedback log")
    flt = core.feedback.filter_of(session.caller.app_id, **{k: v or None for k, v in _filters(request).items()})
    lines = jsonl_lines(core.feedback.log.iter_records(session.caller.app_id, flt))
    return StreamingResponse(iterate_in_threadpool(lines), media_type="application/x-ndjson", headers={
        **SECURITY_HEADERS, "Content-Disposition": 'attachment; filename="feedback.jsonl"'})


def _link(filters: dict[str, str], page_no: int) -> str:
    return "/console/feedback?" + urlencode({**filters, "page": page_no})


def _row(event: dict[str, Any]) -> dict[str, Any]:
    """An event with its verdicts in words: each concept said present or absent, each region's
    verdict with its box and concepts."""
    data = event["data"]
    concepts = [(c.get("name") or c.get("id"), bool(c.get("value"))) for c in data.get("concepts") or []]
    regions = [{"feedback": r.get("feedback"), "box": r.get("box"),
                "concepts": [(c.get("name") or c.get("id"), bool(c.get("value"))) for c in r.get("concepts") or []]}
               for r in data.get("regions") or []]
    return {**event, "concepts": concepts, "regions": regions}
