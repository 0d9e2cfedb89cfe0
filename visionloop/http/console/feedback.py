"""/console/feedback: the app's feedback log, newest first, filtered as ``GET /v2/feedback`` filters
it (model, version, event type, end user, session, time), with unlinked events marked and the
image each event judged (its regions drawn in their verdicts' colours); and the selection as a
JSON Lines or Parquet download. Needs ``feedback_admin``, as the API's log does."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import FileResponse, Response, StreamingResponse

from visionloop import errors
from visionloop.http.console.render import SECURITY_HEADERS, ConsoleRoute, from_htmx, page
from visionloop.http.console.session import SessionDep, need
from visionloop.http.deps import CoreDep
from visionloop.http.routes.inputs import etag_matches
from visionloop.services.feedback.export import FORMATS, ExportError, jsonl_lines, write_parquet
from visionloop.services.input_images import VERDICT_COLOURS, draw_regions
from visionloop.services.paging import Page

router = APIRouter(route_class=ConsoleRoute)
FILTERS = ("model_id", "version_id", "event_type", "end_user_id", "session_id", "created_after", "created_before")
PER_PAGE = 50


def _filters(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip()[:255] for name in FILTERS}


@router.get("/feedback")
def feedback_page(request: Request, session: SessionDep, core: CoreDep) -> Response:
    """The log page; to htmx (filters changed, a page turned), the selection alone."""
    need(session, "feedback_admin", "The feedback log")
    app_id = session.caller.app_id
    chosen = _filters(request)
    flt = core.feedback.filter_of(app_id, **{k: v or None for k, v in chosen.items()})
    page_no = Page.of(request.query_params.get("page"), None, default=PER_PAGE, cap=PER_PAGE)
    events = core.feedback.log.list(app_id, flt, page_no, newest_first=True)
    stored = core.console.stored_inputs(app_id, sorted({e["input_id"] for e in events
                                                        if e["input_id"] and not e["data"].get("digest")}))
    kept = {k: v for k, v in chosen.items() if v}
    return page(request, "feedback_log.html" if from_htmx(request) else "feedback.html", {
        "events": [_row(e, stored) for e in events], "colours": VERDICT_COLOURS, "chosen": chosen,
        "page_no": page_no.page,
        "exports": {fmt: "/console/feedback/export?" + urlencode({**kept, "format": fmt}) for fmt in FORMATS},
        "newer": _link(kept, page_no.page - 1) if page_no.page > 1 else None,
        "older": _link(kept, page_no.page + 1) if len(events) == PER_PAGE else None})


@router.get("/feedback/{event_id}/image")
def event_image(event_id: str, request: Request, session: SessionDep, core: CoreDep) -> Response:
    """The image a feedback event judged, with the regions it judged drawn in their verdicts'
    colours (and a box it moved where it was predicted): the output's image, a clicked hit's, or the
    stored input an unlinked event names."""
    need(session, "feedback_admin", "A feedback event's image")
    found = core.console.event_image(session.caller.app_id, event_id)
    if found is None or not core.blobs.exists(found.digest):
        raise errors.ResourceNotFound(f"feedback event {event_id[:80]!r} has no image stored in this app")
    if found.stored_input:  # an input's image, as GET /v2/inputs/{id}/image serves it
        need(session, "inputs", "The stored input image an unlinked feedback event names")
    # an event never changes (the log is append-only): its image and drawing neither
    headers = {"Cache-Control": "private, no-cache", "ETag": f'"{found.digest}-{event_id[:64]}"'}
    if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    drawn = draw_regions(core.input_images.thumbnail(found.digest), found.regions, found.predicted)
    return Response(drawn, media_type="image/jpeg", headers=headers)


@router.get("/feedback/export")
def export(request: Request, session: SessionDep, core: CoreDep) -> Response:
    """Every event the filters select, oldest first: JSON Lines streamed as it is read, or Parquet
    (``format=parquet``, with pyarrow installed); the records ``GET /v2/feedback`` lists and
    ``visionloop feedback export`` writes."""
    need(session, "feedback_admin", "Exporting the feedback log")
    fmt = request.query_params.get("format") or FORMATS[0]
    if fmt not in FORMATS:
        raise errors.InvalidRequest(f"format: must be one of {', '.join(FORMATS)}, got {fmt[:40]!r}")
    flt = core.feedback.filter_of(session.caller.app_id, **{k: v or None for k, v in _filters(request).items()})
    records = core.feedback.log.iter_records(session.caller.app_id, flt)
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="feedback.{fmt}"'}
    if fmt == "jsonl":
        return StreamingResponse(iterate_in_threadpool(jsonl_lines(records)), media_type="application/x-ndjson",
                                 headers=headers)
    fd, name = tempfile.mkstemp(suffix=".parquet")
    os.close(fd)
    path = Path(name)
    try:
        write_parquet(records, path)
    except ExportError as exc:
        path.unlink(missing_ok=True)
        raise errors.InvalidRequest(str(exc)) from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(path, media_type="application/vnd.apache.parquet", headers=headers,
                        background=BackgroundTask(path.unlink, missing_ok=True))


def _link(filters: dict[str, str], page_no: int) -> str:
    return "/console/feedback?" + urlencode({**filters, "page": page_no})


def _row(event: dict[str, Any], stored: set[str]) -> dict[str, Any]:
    """An event with its verdicts in words (each concept said present or absent, each region's
    verdict with its box and concepts) and whether it has an image to show."""
    data = event["data"]
    concepts = [(c.get("name") or c.get("id"), bool(c.get("value"))) for c in data.get("concepts") or []]
    regions = [{"feedback": r.get("feedback"), "box": r.get("box"),
                "concepts": [(c.get("name") or c.get("id"), bool(c.get("value"))) for c in r.get("concepts") or []]}
               for r in data.get("regions") or []]
    return {**event, "concepts": concepts, "regions": regions,
            "has_image": bool(data.get("digest")) or event["input_id"] in stored}
