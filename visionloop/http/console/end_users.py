"""/console/end-users: who gave feedback, how much and when; how far training trusts each one's
concept votes on a model (who is down-weighted, and on what evidence); erasing one end user's feedback
(privacy), confirmed on a page that shows what goes. Needs ``feedback_admin``, as
``DELETE /v2/feedback?end_user_id=`` does; erasure rebuilds what was learned from it the same way."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from visionloop import errors
from visionloop.http.console.render import ConsoleRoute, from_htmx, page, see_other
from visionloop.http.console.session import FormDep, SessionDep, need
from visionloop.http.deps import CoreDep
from visionloop.inference.catalog import GENERAL
from visionloop.services.paging import Page
from visionloop.services.training.data import APP_ANNOTATOR

router = APIRouter(route_class=ConsoleRoute)
PER_PAGE = 50


def _end_user(value: str | None) -> str:
    if not value or len(value) > 255:
        raise errors.InvalidRequest("end_user_id: name one end user (1 to 255 characters)")
    return value


@router.get("/end-users")
def end_users_page(request: Request, session: SessionDep, core: CoreDep) -> Response:
    """The page; to htmx (a page of end users turned), that page of end users alone."""
    need(session, "feedback_admin", "The end users page")
    app_id = session.caller.app_id
    page_no = Page.of(request.query_params.get("page"), None, default=PER_PAGE, cap=PER_PAGE)
    users = core.console.end_users(app_id, page_no)
    pager = {"users": users, "page_no": page_no.page,
             "newer": f"/console/end-users?page={page_no.page - 1}" if page_no.page > 1 else None,
             "older": f"/console/end-users?page={page_no.page + 1}" if len(users) == PER_PAGE else None}
    if from_htmx(request):
        return page(request, "end_users_list.html", pager)
    model_id = request.query_params.get("model_id") or GENERAL.id
    reliability, down = core.learning.reliability(app_id, model_id)
    return page(request, "end_users.html", {
        **pager, "erased": request.query_params.get("erased", ""),
        "model": core.models.get(app_id, model_id).model, "reliability": reliability, "down": down,
        "app_annotator": APP_ANNOTATOR,
        "actions": core.console.actions(app_id, action="erase")})


@router.get("/end-users/erase")
def confirm_erase(request: Request, session: SessionDep, core: CoreDep) -> Response:
    """What erasing an end user removes, before it does."""
    need(session, "feedback_admin", "Erasing an end user's feedback")
    end_user_id = _end_user(request.query_params.get("end_user_id"))
    counts = core.console.events_of(session.caller.app_id, end_user_id)
    return page(request, "erase.html", {"end_user_id": end_user_id, "counts": counts})


@router.post("/end-users/erase")
def erase(session: SessionDep, core: CoreDep, form: FormDep) -> Response:
    need(session, "feedback_admin", "Erasing an end user's feedback")
    erasure = core.feedback.log.erase_end_user(session.caller.app_id, _end_user(form.get("end_user_id")))
    # the audit log keeps how much went, not whose: the id is what the end user asked to have erased
    core.console.record(session.caller, "erase", None, detail=f"{erasure.count} feedback events of one end user")
    return see_other("/console/end-users?" + urlencode({"erased": erasure.count}))
