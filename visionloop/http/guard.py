"""ASGI middleware guarding request bodies before any route sees them.

- Bodies over the size limit are refused with a clean 413 envelope, whether the client declared
  a Content-Length or streams chunks (the stream is cut as soon as it passes the limit).
- Clarifai accepts JSON whatever the declared content type (curl sends form encoding by
  default), so POST/PATCH/PUT/DELETE bodies on /v2 are presented to the app as JSON.
- A NUL character in the path or query string is refused (11102): no id or name contains one,
  and PostgreSQL cannot even compare a text value holding one.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visionloop import errors
from visionloop.http.errors import error_body


class BodyGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string") or b""
        if "\x00" in scope.get("path", "") or b"\x00" in query or b"%00" in query:
            await _send_error(send, errors.InvalidRequest("the URL must not contain NUL characters (%00)"))
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max):
            await _reject(send, self.max)
            return
        if scope["method"] in ("POST", "PATCH", "PUT", "DELETE") and scope["path"].startswith("/v2"):
            ctype = headers.get(b"content-type", b"")
            if b"json" not in ctype:
                scope = dict(scope)
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                scope["headers"].append((b"content-type", b"application/json"))

        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if not too_large:  # once the body is too large, the app's own answer is replaced
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large:
            await _reject(send, self.max)


class _BodyTooLarge(Exception):
    pass


async def _reject(send: Send, limit: int) -> None:
    await _send_error(send, errors.RequestTooLarge(f"the request body is larger than {limit} bytes"), close=True)


async def _send_error(send: Send, exc: errors.ApiError, *, close: bool = False) -> None:
    body = json.dumps(error_body(exc)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": exc.http_status,
                "headers": headers + ([(b"connection", b"close")] if close else [])})
    await send({"type": "http.response.body", "body": body})
