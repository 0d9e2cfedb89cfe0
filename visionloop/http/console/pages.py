"""Sign-in, sign-out and the overview page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from visionloop import errors
from visionloop.http.console import charts
from visionloop.http.console.render import ConsoleRoute, page, see_other
from visionloop.http.console.session import (
    FormDep,
    SessionDep,
    check_login_token,
    current_session,
    end_session,
    login_token,
    read_form,
    remember_login_nonce,
    start_session,
)
from visionloop.http.deps import CoreDep
from visionloop.services.paging import Page

router = APIRouter(route_class=ConsoleRoute)


def _next(target: str | None) -> str:
    """Where to go after signing in: a console page of this server, never another site."""
    if target and target.startswith("/console") and "//" not in target and "\\" not in target:
        return target
    return "/console"


def _login_page(request: Request, core: CoreDep, target: str, error: errors.ApiError | None = None) -> Response:
    nonce, token = login_token(core)
    response = page(request, "login.html", {"login_token": token, "next": target, "error": error},
                    error.http_status if error is not None else 200)
    remember_login_nonce(response, request, core, nonce)
    return response


@router.get("/login")
async def login_form(request: Request, core: CoreDep) -> Response:
    target = _next(request.query_params.get("next"))
    if await current_session(request, core) is not None:
        return see_other(target)
    return await run_in_threadpool(_login_page, request, core, target)


@router.post("/login")
async def login(request: Request, core: CoreDep) -> Response:
    """Sign in with an API key (form field ``api_key``): the session can do what the key can."""
    form = await read_form(request)
    await run_in_threadpool(check_login_token, request, form, core)
    target = _next(form.get("next"))
    key = form.get("api_key", "").strip()
    try:
        if not key:
            raise errors.KeyMissing("api_key: enter an API key")
        caller = await run_in_threadpool(core.apps.authenticate, key)
    except errors.ApiError as exc:
        return await run_in_threadpool(_login_page, request, core, target, exc)
    previous = await current_session(request, core)
    if previous is not None:  # signing in again replaces the session: the old cookie stops working
        await run_in_threadpool(core.console.end_session, previous.nonce)
    response = see_other(target)
    await run_in_threadpool(start_session, response, request, core, caller)
    return response


@router.post("/logout")
def logout(session: SessionDep, core: CoreDep, _: FormDep) -> Response:
    response = see_other("/console/login")
    end_session(response, session, core)
    return response


@router.get("")
def overview(request: Request, session: SessionDep, core: CoreDep) -> Response:
    """The app at a glance: firing alarms, the version each model predicts with, feedback per day, how
    many judgements end users disagree on, and search click figures (each as the key's scopes allow)."""
    app_id, scopes = session.caller.app_id, session.caller.scopes
    days = core.console.feedback_per_day(app_id) if "feedback_admin" in scopes else None
    verdicts = charts.feedback_per_day(core.console.verdicts_per_day(app_id), charts.last_days(14)) if days else None
    disputed = core.console.disagreement(app_id) if "feedback_admin" in scopes else None
    views = core.models.list(app_id, Page(1, core.settings.max_per_page)) if "models" in scopes else None
    search = core.learning.clicks.metrics(app_id)["kinds"] if "search" in scopes else None
    alarms = core.alarms.list(app_id, Page(1, 50), "firing") if "feedback_admin" in scopes else []
    return page(request, "overview.html", {"days": days, "verdicts": verdicts, "views": views, "search": search,
                                           "disputed": disputed, "alarms": alarms})
