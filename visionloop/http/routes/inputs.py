"""/inputs: add, list, read, patch, delete, status."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from visionloop import errors, status
from visionloop.http import wire
from visionloop.http.console.session import key_or_session
from visionloop.http.deps import BaseUrlDep, CoreDep, InputsCaller, PageDep
from visionloop.http.schemas import DeleteInputsRequest, InputIn, PatchInputsRequest, PostInputsRequest
from visionloop.http.strict_json import StrictJSONRoute
from visionloop.http.unknown_fields import name_unknown_fields
from visionloop.services.apps import Caller
from visionloop.services.geo import GeoPoint
from visionloop.services.image_source import ImageSource
from visionloop.services.input_images import SIZES
from visionloop.services.input_regions import parse_input_regions
from visionloop.services.inputs import Annotation, NewInput

router = APIRouter(tags=["inputs"], route_class=StrictJSONRoute)
# An <img> in the console sends its session cookie, not a key: either one will do for the image.
ImageCaller = Annotated[Caller, Depends(key_or_session("inputs"))]


def to_new_input(index: int, item: InputIn) -> NewInput:
    """Wire input -> service input; a missing image is left for the service to judge."""
    image = item.data.image
    source = None
    if image is not None and (image.base64 or image.url):
        source = ImageSource.of(image.base64, image.url, f"inputs[{index}].data.image")
    anns = []
    for j, c in enumerate(item.data.concepts):
        cid = c.id or c.name
        if not cid:
            raise errors.InvalidRequest(f"inputs[{index}].data.concepts[{j}]: a concept needs an id or a name")
        anns.append(Annotation(cid, c.value))
    point = item.data.geo.geo_point if item.data.geo else None
    return NewInput(id=item.id, image=source, concepts=tuple(anns), metadata=item.data.metadata,
                    geo=GeoPoint(point.latitude, point.longitude) if point else None,
                    allow_duplicate_url=bool(image and image.allow_duplicate_url),
                    regions=parse_input_regions(item.data.regions, f"inputs[{index}].data.regions"))


@router.post("/inputs")
def post_inputs(body: PostInputsRequest, caller: InputsCaller, core: CoreDep, base_url: BaseUrlDep) -> JSONResponse:
    core.usage.check(caller, len(body.inputs))
    items, early = [], {}
    for i, item in enumerate(body.inputs):
        try:
            items.append(to_new_input(i, item))
        except errors.ApiError as exc:
            early[i] = exc
            items.append(NewInput(id=item.id, image=None))
    results = core.inputs.add(caller, items)
    for res in results:
        if res.index in early:
            res.error = early[res.index]
        if res.error is not None:
            name_unknown_fields(res.error, body)
    envelope, code = wire.batch_status(results, kept=any(r.stored is not None for r in results))
    out: list[dict[str, Any]] = []
    for res, item in zip(results, body.inputs):
        if res.stored is not None:  # stored, maybe without its image (its error names the field)
            out.append(wire.input_obj(res.stored, base_url=base_url)
                       | ({"status": wire.item_error(res.error)} if res.error else {}))
        else:
            assert res.error is not None
            # with its URL: the Python client builds every item of a MIXED_STATUS answer into an Image
            url = item.data.image.url if item.data.image is not None else None
            out.append({"id": res.input_id or "", "status": wire.item_error(res.error),
                        "data": {"image": {"url": url}} if url else {}})
    return JSONResponse({"status": envelope, "inputs": out}, status_code=code)


@router.get("/inputs", responses={207: {"description": "MIXED_STATUS (10010): the page lists an input whose "
                                                     "download failed (its own status, 30002, names why)",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}})
def list_inputs(caller: InputsCaller, core: CoreDep, page: PageDep, base_url: BaseUrlDep) -> JSONResponse:
    """A page listing an input whose download failed is MIXED_STATUS with HTTP 207, as Clarifai's
    was (the Python client reads such a page, and ``get_all(ignore_error=True)`` skips those inputs)."""
    inputs = [wire.input_obj(s, base_url=base_url) for s in core.inputs.list(caller.app_id, page)]
    if any(i["status"]["code"] != status.INPUT_SUCCESS for i in inputs):
        return JSONResponse({"status": status.envelope(status.MIXED_STATUS), "inputs": inputs}, status_code=207)
    return JSONResponse(wire.ok(inputs=inputs))


@router.get("/inputs/status")
def inputs_status(caller: InputsCaller, core: CoreDep) -> dict[str, Any]:
    counts = core.inputs.counts(caller.app_id)
    processed = counts.get(status.INPUT_SUCCESS, 0)
    pending = counts.get(status.INPUT_PENDING, 0)
    in_progress = counts.get(status.INPUT_IN_PROGRESS, 0)
    failed = counts.get(status.INPUT_FAILED, 0)
    return wire.ok(counts={"processed": processed, "to_process": pending, "errors": failed,
                           "processing": in_progress})


@router.get("/inputs/{input_id}")
def get_input(input_id: str, caller: InputsCaller, core: CoreDep, base_url: BaseUrlDep) -> dict[str, Any]:
    return wire.ok(input=wire.input_obj(core.inputs.get(caller.app_id, input_id), base_url=base_url))


@router.get("/inputs/{input_id}/image", response_class=Response,
            responses={200: {"content": {"image/*": {}}, "description": "The image bytes (ETag: their digest)"},
                       304: {"description": "Not modified: If-None-Match named the current ETag"}})
def get_input_image(input_id: str, request: Request, caller: ImageCaller, core: CoreDep,
                    size: Annotated[str | None, Query(description="original (default) or thumbnail (at most "
                                                                   "256 px a side, JPEG)")] = None) -> Response:
    """A stored input's image, to the key or to a console session of its app: what
    ``data.image.url`` of an input stored from bytes points at."""
    size = size or SIZES[0]
    if size not in SIZES:
        raise errors.InvalidRequest(f"size: must be one of {', '.join(SIZES)}, got {size[:40]!r}")
    headers = {"Cache-Control": "private, no-cache", "Vary": "Authorization, Cookie"}
    etag = core.input_images.etag(caller.app_id, input_id, size)
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={**headers, "ETag": etag})
    image = core.input_images.get(caller.app_id, input_id, size)
    return Response(image.data, media_type=image.media_type, headers={**headers, "ETag": image.etag})


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names ``etag`` (weak comparison, as RFC 9110 asks for GET)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


@router.patch("/inputs")
def patch_inputs(body: PatchInputsRequest, caller: InputsCaller, core: CoreDep, base_url: BaseUrlDep) -> dict[str, Any]:
    action = body.action or "merge"
    if action not in ("merge", "overwrite", "remove"):
        raise errors.InvalidRequest(f"action: must be merge, overwrite or remove, got {action!r}")
    for i, item in enumerate(body.inputs):
        image = item.data.image
        if image is not None and (image.base64 or image.url):
            raise errors.InvalidRequest(f"inputs[{i}].data.image: an input's image cannot be changed (its "
                                        "predictions and embeddings are of that image); delete the input and add "
                                        "the new image as a new input")
    items = [to_new_input(i, item) for i, item in enumerate(body.inputs)]
    stored = core.inputs.patch(caller.app_id, action, items)  # type: ignore[arg-type]
    return wire.ok(inputs=[wire.input_obj(s, base_url=base_url) for s in stored])


@router.delete("/inputs/{input_id}")
def delete_input(input_id: str, caller: InputsCaller, core: CoreDep) -> dict[str, Any]:
    core.inputs.delete(caller.app_id, [input_id])
    return wire.ok()


@router.delete("/inputs")
def delete_inputs(body: DeleteInputsRequest, caller: InputsCaller, core: CoreDep) -> dict[str, Any]:
    if body.delete_all:
        core.inputs.delete_all(caller.app_id)
    else:
        core.inputs.delete(caller.app_id, body.ids)
    return wire.ok()
