"""/console/review: the review queue. Stored images whose concepts the app's end users disagree on
most, then those the app's active version of the general model is least sure of; the operator says
present or absent, stored as the app's annotation of the input (what
``PATCH /v2/inputs`` stores), which training counts as one trusted judge beside the end users.

Seeing the queue needs ``feedback_admin`` (it is read from others' feedback); labelling needs
``inputs``, as changing an input's concepts through the API does.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from visionloop import errors
from visionloop.http.console.render import ConsoleRoute, page, see_other
from visionloop.http.console.session import FormDep, SessionDep, need
from visionloop.http.deps import CoreDep
from visionloop.http.wire import image_url
from visionloop.inference.catalog import GENERAL
from visionloop.services.inputs import Annotation, NewInput
from visionloop.services.training.scoring import HEADS_KIND

router = APIRouter(route_class=ConsoleRoute)
_VALUES = {"present": 1.0, "absent": 0.0}


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
                                         "images": images,
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
