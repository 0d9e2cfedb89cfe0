"""The operator console's sessions: a signed, expiring cookie naming the API key signed in with.

- The cookie holds ``key_id.expiry.nonce.signature``: never the key itself. The signature is an
  HMAC-SHA256 under a secret kept in the database (:class:`~visionloop.services.console.ConsoleService`),
  so every API process on that database accepts a session any of them started; the sign-in is
  recorded there too, so signing out ends it everywhere, for every copy of the cookie. Each
  request resolves the key again: the session can do exactly what the key's scopes allow, and
  revoking the key ends it.
- The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page sends it),
  Secure when the server is reached over https, and expires (``console_session_hours``).
- Every state-changing form carries a CSRF token, an HMAC of the session's nonce; the sign-in
  form's token is tied to a nonce in a short-lived cookie of its own (no forged sign-ins either).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from visionloop import errors
from visionloop.core import VisionLoop
from visionloop.http.console.render import SignInRequired
from visionloop.http.deps import CoreDep, get_caller, in_app
from visionloop.services.apps import Caller

COOKIE = "visionloop_session"
LOGIN_COOKIE = "visionloop_login"
LOGIN_PATH = "/console/login"
LOGIN_SECONDS = 3600
FORM_MAX_BYTES = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Session:
    caller: Caller
    nonce: str
    expires: int

    def csrf_token(self, secret: bytes) -> str:
        return _sign(secret, f"csrf.{self.nonce}")


def _sign(secret: bytes, message: str) -> str:
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of what a client sent (any text) with what it should be."""
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def _secure(request: Request, core: VisionLoop) -> bool:
    return request.url.scheme == "https" or core.settings.public_base_url.startswith("https://")


def start_session(response: Response, request: Request, core: VisionLoop, caller: Caller) -> None:
    """Sign in: set the session cookie for ``caller``'s key (and drop the sign-in cookie)."""
    lifetime = int(core.settings.console_session_hours * 3600)
    expires = int(time.time()) + lifetime
    nonce = secrets.token_hex(16)
    core.console.open_session(caller, nonce, dt.datetime.fromtimestamp(expires, dt.timezone.utc))
    payload = f"{caller.key_id}.{expires}.{nonce}"
    value = f"{payload}.{_sign(core.console.secret(), payload)}"
    response.set_cookie(COOKIE, value, max_age=lifetime, path="/", httponly=True, samesite="strict",
                        secure=_secure(request, core))
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH)


def end_session(response: Response, session: Session, core: VisionLoop) -> None:
    """Sign out: the session ends on the server (a copy of the cookie is refused too) and the
    browser drops the cookie."""
    core.console.end_session(session.nonce)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


def _payload(value: str, secret: bytes) -> tuple[str, int, str] | None:
    """(key id, expiry, nonce) of a cookie signed with ``secret`` and not expired, else None."""
    parts = value.split(".")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    key_id, expires, nonce, signature = parts
    if not _same(signature, _sign(secret, f"{key_id}.{expires}.{nonce}")):
        return None
    if int(expires) <= time.time():
        return None
    return key_id, int(expires), nonce


async def current_session(request: Request, core: VisionLoop) -> Session | None:
    """The request's valid session, or None (no cookie, a forged or expired one, a revoked key)."""
    value = request.cookies.get(COOKIE)
    if not value:
        return None
    secret = await run_in_threadpool(core.console.secret)
    payload = _payload(value, secret)
    if payload is None:
        return None
    key_id, expires, nonce = payload
    if not await run_in_threadpool(core.console.session_open, nonce, key_id):  # signed out since
        return None
    try:
        caller = await run_in_threadpool(core.apps.caller_of_key, key_id)
    except errors.ApiError:  # revoked or deleted since
        return None
    return Session(caller, nonce, expires)


def key_or_session(scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the caller of the request's ``Authorization`` key, or else of its console
    session (what an ``<img>`` on a console page sends), holding ``scope``."""
    async def dependency(request: Request, core: CoreDep) -> Caller:
        if "authorization" in request.headers or COOKIE not in request.cookies:
            caller = await get_caller(request, core)
        else:
            session = await current_session(request, core)
            if session is None:
                raise errors.KeyMissing("the console session expired or was ended: sign in again at /console, "
                                        "or send the header 'Authorization: Key <your API key>'")
            caller = in_app(request, session.caller)
        caller.require(scope)
        return caller

    dependency.__name__ = f"require_{scope}"  # as deps.scoped names it: the route table reads scopes by it
    return dependency


def check_csrf(session: Session, form: dict[str, str], secret: bytes) -> None:
    """Refuse a state-changing form whose token is not this session's (a forged cross-site post)."""
    if not _same(form.get("csrf_token", ""), session.csrf_token(secret)):
        raise errors.CsrfRefused("the form's CSRF token is missing or not this session's; reload the page and try "
                                 "again")


def login_token(core: VisionLoop) -> tuple[str, str]:
    """(nonce, token) for a sign-in form: the token goes in the form, the nonce in its cookie."""
    nonce = secrets.token_hex(16)
    return nonce, _sign(core.console.secret(), f"login.{nonce}")


def remember_login_nonce(response: Response, request: Request, core: VisionLoop, nonce: str) -> None:
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=LOGIN_SECONDS, path=LOGIN_PATH, httponly=True,
                        samesite="strict", secure=_secure(request, core))


def check_login_token(request: Request, form: dict[str, str], core: VisionLoop) -> None:
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    expected = _sign(core.console.secret(), f"login.{nonce}")
    if not nonce or not _same(form.get("csrf_token", ""), expected):
        raise errors.CsrfRefused("the sign-in form's CSRF token is missing or does not match this browser's; "
                          "reload the sign-in page and try again")


async def read_form(request: Request) -> dict[str, str]:
    """A URL-encoded form body (what an HTML form posts), each field's last value; no body is an
    empty form."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX_BYTES:
            raise errors.RequestTooLarge(f"a console form is at most {FORM_MAX_BYTES} bytes")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if body and ctype != "application/x-www-form-urlencoded":
        raise errors.BadRequestFormat("the body must be a form (application/x-www-form-urlencoded)")
    try:
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=50, errors="strict"))
    except (UnicodeDecodeError, ValueError):
        raise errors.BadRequestFormat("the form could not be read: not UTF-8, or more than 50 fields") from None
    for name, value in form.items():  # no text the database is given holds NUL (PostgreSQL refuses it)
        if "\x00" in name or "\x00" in value:
            raise errors.BadRequestFormat(f"form field {name[:40]!r}: a NUL character is not allowed")
    return form


async def signed_in(request: Request, core: CoreDep) -> Session:
    """A console page's dependency: the session (kept on the request for the page's navigation
    bar and forms), or :class:`SignInRequired`."""
    session = await current_session(request, core)
    if session is None:
        raise SignInRequired
    request.state.console_session = session
    request.state.csrf = session.csrf_token(await run_in_threadpool(core.console.secret))
    return session


SessionDep = Annotated[Session, Depends(signed_in)]


def need(session: Session, scope: str, what: str) -> None:
    """Refuse, naming the scope, what the session's key may not do (as the API refuses it)."""
    if scope not in session.caller.scopes:
        raise errors.InsufficientScopes(f"{what} needs the '{scope}' scope, which this API key lacks; sign in with a "
                                        "key that has it")


async def posted_form(request: Request, session: SessionDep, core: CoreDep) -> dict[str, str]:
    """A state-changing form's dependency: the form posted in this session, its CSRF token checked."""
    form = await read_form(request)
    check_csrf(session, form, await run_in_threadpool(core.console.secret))
    return form


FormDep = Annotated[dict[str, str], Depends(posted_form)]
