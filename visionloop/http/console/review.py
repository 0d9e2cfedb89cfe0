"""/console/review: the review queue. Stored images whose concepts the app's end users disagree on
most, then those the app's active version of the general model is least sure of; the operator says
present or absent, stored as the app's annotation of the input (what
``PATCH /v2/inputs`` stores), which training counts as one trusted judge beside the end users.
Then stored images with predicted boxes in question (a detection model unsure of them, or its end
users' region feedback disagreeing), drawn on the image: the operator says each box is correct or
wrong, or draws in a missed object by its four coordinates, stored as the input's annotated regions
(``data.regions`` of ``PATCH /v2/inputs``), which teach the detection models.

Seeing the queue needs ``feedback_admin`` (it is read from others' feedback); labelling needs
``inputs``, as changing an input's concepts through the API does.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from visionloop import errors
from visionloop.core import VisionLoop
from visionloop.http.console.render import SECURITY_HEADERS, ConsoleRoute, from_htmx, page, see_other
from visionloop.http.console.session import FormDep, SessionDep, need
from visionloop.http.deps import CoreDep
from visionloop.http.wire import image_url
from visionloop.inference.catalog import GENERAL
from visionloop.learning.boxes import Box
from visionloop.learning.vocabulary import RegionFeedback
from visionloop.services.concepts import check_concept_id
from visionloop.services.console import ReviewImage
from visionloop.services.feedback.parse import COORDINATES, invalid, parse_box
from visionloop.services.input_images import THUMBNAIL, draw_regions
from visionloop.services.input_regions import RegionAnnotation
from visionloop.services.inputs import Annotation, NewInput
from visionloop.services.training.scoring import HEADS_KIND

router = APIRouter(route_class=ConsoleRoute)
_VALUES = {"present": 1.0, "absent": 0.0}
_BOX_VERDICTS = {"correct": True, "wrong": False}
# how a box is drawn: the legend's colours of accurate and false_positive region feedback for what the
# app annotated as shown and as not shown, dark for a box still in question
_DRAWN = {True: RegionFeedback.ACCURATE, False: RegionFeedback.FALSE_POSITIVE, None: None}


@router.get("/review")
def review_page(request: Request, session: SessionDep, core: CoreDep) -> Response:
    need(session, "feedback_admin", "The review queue")
    app_id = session.caller.app_id
    queue = core.console.review_queue(app_id)
    version, unsure = core.learning.least_certain(app_id, GENERAL.id)
    names = dict(core.models.concepts_of(core.models.get(app_id, GENERAL.id))) if unsure else {}
    # relative: the page may be reached at another origin than the public base URL (its CSP is self)
    images = {i: image_url("", i) + "?size=thumbnail" for i in {d.input_id for d, _ in queue} | {
        i for i, _, _ in unsure}}
    return page(request, "review.html", {"queue": queue, "unsure": unsure, "version": version,
                                         "rescored": (version.params or {}).get("kind") == HEADS_KIND, "names": names,
                                         "images": images, "boxes": core.console.review_boxes(app_id),
                                         "drawn": _drawn, "error": "",
                                         "may_label": "inputs" in session.caller.scopes,
                                         "labelled": request.query_params.get("labelled", "")})


@router.post("/review/label")
def label(session: SessionDep, core: CoreDep, form: FormDep) -> Response:
    need(session, "inputs", "Labelling")
    input_id, concept_id = form.get("input_id", ""), form.get("concept_id", "")
    if form.get("verdict") not in _VALUES:
        raise errors.InvalidRequest(f"verdict: must be one of {', '.join(_VALUES)}")
    if not input_id or not concept_id:
        raise errors.InvalidRequest("input_id and concept_id: name the input and the concept to label")
    core.inputs.patch(session.caller.app_id, "merge",
                      [NewInput(id=input_id, image=None, concepts=(Annotation(concept_id, _VALUES[form["verdict"]]),))])
    return see_other("/console/review?" + urlencode({"labelled": f"{input_id}: {concept_id} {form['verdict']}"}))


@router.get("/review/{input_id}/image")
def review_image(input_id: str, session: SessionDep, core: CoreDep) -> Response:
    """A stored input's thumbnail with its boxes in question and the boxes the app annotated drawn."""
    need(session, "inputs", "A stored input's image")
    app_id = session.caller.app_id
    thumb = core.input_images.get(app_id, input_id, THUMBNAIL).data  # 404 for another app's input
    items = core.console.review_boxes(app_id, input_id)
    regions = [_region(b, shown) for item in items for b, shown in item.annotated]
    regions += [_region(b.box, None) for item in items for b in item.boxes if b.label is None]
    return Response(draw_regions(thumb, regions), media_type="image/jpeg", headers=SECURITY_HEADERS)


@router.post("/review/box")
def label_box(request: Request, session: SessionDep, core: CoreDep, form: FormDep) -> Response:
    """One box said correct (it shows the concept) or wrong (it does not): the input's annotated
    region with that box takes the concept's value, or is added. htmx gets the input's part of the
    page back, with a refused box's reason in it."""
    need(session, "inputs", "Labelling")
    app_id, input_id = session.caller.app_id, form.get("input_id", "")
    try:
        shown = _BOX_VERDICTS.get(form.get("verdict", ""))
        if shown is None:
            raise errors.InvalidRequest(f"verdict: must be one of {', '.join(_BOX_VERDICTS)}")
        concept_id = form.get("concept_id", "").strip()
        check_concept_id(concept_id, "concept_id")
        box = _box(form)
        core.inputs.patch(app_id, "merge", [NewInput(id=input_id, image=None, regions=(
            RegionAnnotation(None, box, ((concept_id, shown),), "box"),))])
    except errors.InvalidRequest as exc:
        if not from_htmx(request):
            raise
        return _boxes_of(request, core, app_id, input_id, str(exc), 400)
    if from_htmx(request):
        return _boxes_of(request, core, app_id, input_id, "", 200)
    return see_other("/console/review?" + urlencode({"labelled": f"{input_id}: {concept_id} box {form['verdict']}"}))


def _box(form: dict[str, str]) -> Box:
    """The four coordinates of a form as the API reads a bounding box, each error naming its field."""
    raw: dict[str, float] = {}
    for name in COORDINATES:
        value = form.get(name, "").strip()
        try:
            raw[name] = float(value)
        except ValueError:
            raise invalid(f"box.{name}", f"must be a number within [0, 1], got {value[:20]!r}") from None
    box = parse_box(raw, "box")
    assert box is not None  # given a dict, parse_box answers a box or refuses it
    return box


def _boxes_of(request: Request, core: VisionLoop, app_id: str, input_id: str, error: str, status_code: int) -> Response:
    """The review page's part for one input, as htmx swaps it in after a box is labelled."""
    items = core.console.review_boxes(app_id, input_id) if input_id else []
    item = items[0] if items else ReviewImage(input_id, [], [])
    return page(request, "review_boxes.html", {"item": item, "drawn": _drawn, "error": error,
                                               "may_label": True}, status_code)


def _drawn(item: ReviewImage) -> str:
    """A version of an input's drawing: its image URL changes when a label does."""
    said = repr(sorted((b, s) for b, s in item.annotated)) + repr([b.label for b in item.boxes])
    return hashlib.sha256(said.encode()).hexdigest()[:12]


def _region(box: Box, shown: bool | None) -> dict[str, Any]:
    return {"box": [box.top, box.left, box.bottom, box.right], "feedback": _DRAWN[shown]}
