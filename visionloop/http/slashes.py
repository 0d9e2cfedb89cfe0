"""Ids holding a '/' in a URL path: Clarifai's Python client asks for model 'the/model' as
``/v2/models/the%2Fmodel``.

The ASGI server decodes the path before routing, after which that slash cannot be told from a
separator. :class:`EncodedSlashes` decodes such a path itself, turning each encoded slash into
:data:`SLASH_IN_SEGMENT` (a control character no id may hold), so the path still matches its
route; :func:`restore` turns it back into '/' in the path parameters an endpoint receives (the
route class and the feedback fast lane call it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Receive, Scope, Send

SLASH_IN_SEGMENT = "\x1f"


class EncodedSlashes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or b""
        if scope["type"] == "http" and b"%2f" in raw.lower():
            segments = raw.decode("latin-1").split("/")
            path = "/".join(unquote(s).replace("/", SLASH_IN_SEGMENT) for s in segments)
            scope = {**scope, "path": path}
        await self.app(scope, receive, send)


def restore(params: dict[str, Any]) -> dict[str, Any]:
    """Path parameters with their encoded slashes back as '/'."""
    return {k: v.replace(SLASH_IN_SEGMENT, "/") if isinstance(v, str) else v for k, v in params.items()}
