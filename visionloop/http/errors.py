"""The one place where failures become the Clarifai status envelope."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visionloop import errors, status
from visionloop.http.strict_json import OutOfRange
from visionloop.http.unknown_fields import beside_note, unknown_in

log = logging.getLogger("visionloop.http")


def error_body(exc: errors.ApiError) -> dict:
    return {"status": status.envelope(exc.code, exc.description, exc.details)}


def error_response(exc: errors.ApiError) -> JSONResponse:
    return JSONResponse(error_body(exc), status_code=exc.http_status)


def field_path(loc: tuple) -> str:
    """``('body', 'inputs', 0, 'data')`` -> ``inputs[0].data``."""
    out = ""
    for part in loc:
        if part in ("body", "query", "path") and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "body"


def validation_error(exc: RequestValidationError) -> errors.ApiError:
    """JSON syntax errors are 11100; a wrong shape or value is 11102 naming the field (a number no
    double holds is refused by the parser, naming its field: :class:`~visionloop.http.strict_json.OutOfRange`)."""
    if isinstance(exc.__cause__, OutOfRange):
        return errors.InvalidRequest(str(exc.__cause__))
    errs = exc.errors()
    for e in errs:
        if e.get("type") == "json_invalid":
            reason = (e.get("ctx") or {}).get("error", "malformed JSON")
            return errors.BadRequestFormat(f"the request body is not valid JSON: {reason}")
        if e.get("type") == "missing" and tuple(e.get("loc", ())) == ("body",):
            return errors.BadRequestFormat("the request body is empty; a JSON object is required")
        if e.get("type") == "model_attributes_type" and tuple(e.get("loc", ())) == ("body",):
            return errors.BadRequestFormat("the request body must be a JSON object")
    details = "; ".join(f"{field_path(tuple(e.get('loc', ())))}: {_msg(e)}" for e in errs[:5])
    beside = [name for e in errs[:5] if e.get("type") == "missing" for name in unknown_in(e.get("input"))]
    if beside:
        details += f"; {beside_note(beside)}"
    return errors.InvalidRequest(details)


def _msg(e: dict) -> str:
    msg = str(e.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(errors.RouteNotFound(f"no route {request.method} {request.url.path}"))
        if exc.status_code == 405:
            return error_response(errors.MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}"))
        if exc.status_code == 400:  # FastAPI could not read the body at all (e.g. it is not UTF-8)
            return error_response(errors.BadRequestFormat("the request body could not be read as JSON (is it UTF-8?)"))
        err = errors.ApiError(str(exc.detail))
        err.http_status = exc.status_code
        return error_response(err)

    @app.exception_handler(errors.ApiError)
    @app.exception_handler(DataError)
    async def _other(request: Request, exc: Exception) -> JSONResponse:
        return error_response(api_error_of(exc, request))


def api_error_of(exc: Exception, request: Request) -> errors.ApiError:
    """What a failure raised while serving ``request`` answers (logged unless it is the client's)."""
    if isinstance(exc, errors.ApiError):
        return exc
    if isinstance(exc, DataError):
        # PostgreSQL refuses what SQLite stores: text with NUL characters, strings longer than
        # their column, JSON with NaN. Fields the API stores are checked before they get here;
        # this keeps anything missed (a lookup by such a value, say) a client error, not a 500.
        log.warning("the database refused a value on %s %s: %s", request.method, request.url.path, exc.orig)
        return errors.InvalidRequest("a value in the request cannot be stored or looked up: too long, a NUL "
                                     "character, or a number JSON cannot hold")
    log.exception("unexpected failure on %s %s", request.method, request.url.path, exc_info=exc)
    return errors.Internal("an internal error occurred; it has been logged")


class CatchAll:
    """Outermost middleware: any other failure is answered with the 10020 envelope, here.

    Starlette's ServerErrorMiddleware can answer too, but it re-raises afterwards, so the server
    drops the connection and a client that reuses it fails its next, unrelated request.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as exc:
            if started:  # half a response is out: all that is left is to drop the connection
                raise
            await error_response(api_error_of(exc, Request(scope)))(scope, receive, send)
