"""Rendering console pages: Jinja2 templates (autoescaped), security headers on every page, and
failures as pages (an :class:`~visionloop.errors.ApiError` keeps its HTTP status and says what
went wrong; a request without a session is sent to sign in)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from visionloop import errors, status
from visionloop.http.strict_json import StrictJSONRoute

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parents[1] / "static" / "console"
STATIC_URL = "/static/console"
VENDOR_DIR = STATIC_DIR.parent / "vendor"
VENDOR_URL = "/static/vendor"
# the vendored scripts (static/README.md says where they came from), as the pages load them
HTMX = f"{VENDOR_URL}/htmx.org-2.0.11/htmx.min.js"
UPLOT = f"{VENDOR_URL}/uplot-1.6.32/uPlot.iife.min.js"
UPLOT_CSS = f"{VENDOR_URL}/uplot-1.6.32/uPlot.min.css"
# Pages load nothing from elsewhere: scripts, styles and htmx's requests only from this server
# (no inline script or style, no eval); charts are drawn from JSON data blocks, which never run.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# What each page needs, as the API's routes for the same data need it.
NAV = (("/console", "Overview", None), ("/console/models", "Models", "models"),
       ("/console/feedback", "Feedback", "feedback_admin"), ("/console/end-users", "End users", "feedback_admin"),
       ("/console/review", "Review", "feedback_admin"), ("/console/search", "Search", "search"))


def _when(value: dt.datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.replace("T", " ")[:19]
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if value.tzinfo else \
        value.strftime("%Y-%m-%d %H:%M:%S")


_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["q"] = lambda value: quote(str(value), safe="")
_ENV.filters["when"] = _when
_ENV.globals["status_name"] = lambda code: status.DESCRIPTIONS.get(code, str(code))
_ENV.globals.update(STATIC_URL=STATIC_URL, HTMX=HTMX, UPLOT=UPLOT, UPLOT_CSS=UPLOT_CSS)


def root(request: Request) -> str:
    """The path the console's links start with: the path of the public base URL behind a proxy
    that serves this server under a prefix (``https://host/vision``), else nothing."""
    return urlsplit(request.app.state.core.settings.public_base_url).path


def page(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """A console page; ``session`` (from the request) fills the navigation bar."""
    session = getattr(request.state, "console_session", None)
    scopes = session.caller.scopes if session is not None else frozenset()
    nav = [{"href": href, "label": label, "scope": scope, "allowed": scope is None or scope in scopes}
           for href, label, scope in NAV]
    body = _ENV.get_template(template).render(session=session, nav=nav, path=request.url.path, root=root(request),
                                              csrf=getattr(request.state, "csrf", ""), **context)
    return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)


def from_htmx(request: Request) -> bool:
    """Whether htmx asks for a part of a page to swap in (not a whole page to restore history with)."""
    return request.headers.get("hx-request") == "true" and "hx-history-restore-request" not in request.headers


def see_other(location: str) -> RedirectResponse:
    """After a form: the browser GETs ``location`` (a reload does not post again)."""
    return RedirectResponse(location, status_code=303, headers=SECURITY_HEADERS)


class SignInRequired(Exception):
    """No valid session: the page is shown after signing in."""


def sign_in_url(request: Request) -> str:
    """The sign-in page, then back to the page asked for (for htmx, the page it was asked from)."""
    url = urlsplit(request.headers.get("hx-current-url", "")) if from_htmx(request) else request.url
    path = url.path.removeprefix(root(request)) if from_htmx(request) else url.path
    target = path + (f"?{url.query}" if url.query else "") if path.startswith("/console") else "/console"
    return f"/console/login?next={quote(target, safe='')}"


class ConsoleRoute(StrictJSONRoute):
    """Console routes answer pages, also when they fail."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def page_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInRequired:  # htmx would swap the sign-in page into a part of this one: it is told to go
                response = see_other(sign_in_url(request)) if not from_htmx(request) else Response(
                    status_code=204, headers={**SECURITY_HEADERS, "HX-Redirect": root(request) + sign_in_url(request)})
            except errors.ApiError as exc:
                return page(request, "error.html", {"error": exc}, exc.http_status)
            if response.status_code == 303:  # handlers redirect to app paths; the browser needs the public one
                response.headers["location"] = root(request) + response.headers["location"]
            return response

        return page_handler
