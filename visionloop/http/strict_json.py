"""Request bodies are parsed as strict JSON: ``NaN`` and ``Infinity`` are not JSON.

Python's parser accepts them; stored in metadata they would later break every response (and
PostgreSQL refuses them outright). Routes use :class:`StrictJSONRoute`, so such a body is
refused up front like any other malformed JSON (11100).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from visionloop import errors


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not valid JSON (use null or a finite number)", name, 0)


def loads_strict(body: bytes) -> Any:
    return json.loads(body, parse_constant=_refuse_constant)


def parse_json(raw: bytes) -> Any:
    """A body as strict JSON, for routes that read it themselves, refused as FastAPI's parsing would be."""
    if not raw.strip():
        raise errors.BadRequestFormat("the request body is empty; a JSON object is required")
    try:
        return loads_strict(raw)
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError for bytes in no UTF encoding
        raise errors.BadRequestFormat(f"the request body is not valid JSON: {exc}") from None


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
