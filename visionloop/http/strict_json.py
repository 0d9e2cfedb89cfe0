"""Request bodies are parsed as strict JSON: UTF-8 text, finite numbers, Unicode strings, bounded nesting.

Python's parser accepts more: ``NaN``, ``Infinity``, strings holding a lone UTF-16 surrogate
(``"\\ud800"``, valid syntax but not text), and nesting until the interpreter's recursion limit
breaks. Stored, any of these would later break every response that includes it (and PostgreSQL
refuses them outright), so a body holding one is refused up front like any other malformed JSON
(11100), before anything is stored. Routes use :class:`StrictJSONRoute`; the feedback fast lane
calls :func:`parse_json`.

A number no double holds (``1e999``, a 400-digit integer) is well-formed JSON but no valid value of
any field: every field that takes a number converts it to a double sooner or later, where it
overflowed. It is refused here, for every route and field at once, as :class:`OutOfRange`: an
invalid request (11102) naming the field, as a schema's range check would.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from visionloop import errors
from visionloop.http.slashes import restore

MAX_DEPTH = 64
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # where a lone surrogate could come from
_SURROGATE = re.compile("[\ud800-\udfff]")  # what survives parsing when an escape had no partner


class Refused(json.JSONDecodeError):
    """Well-formed JSON that is still refused; the message names the reason, not a position."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)

    def __str__(self) -> str:
        return self.msg


class OutOfRange(Refused):
    """A number beyond the range of a double; the message names the field (11102, not 11100)."""

    def __init__(self, field: str, text: str) -> None:
        shown = text if len(text) <= 32 else f"{text[:24]}... ({len(text)} characters)"
        super().__init__(f"{field}: the number {shown} is beyond the range of a double "
                         f"(numbers here must be finite, at most {sys.float_info.max:.6g} in magnitude)")
        self.field = field


class _Beyond(str):
    """Stands in for a number no double holds until the tree is walked to find where it is."""


_MAX_DIGITS = len(str(int(sys.float_info.max)))  # an integer with more digits overflows a double


def _refuse_constant(name: str) -> Any:
    raise Refused(f"{name} is not valid JSON (use null or a finite number)")


class _Numbers:
    """The parser's number hooks for one body; ``beyond`` says whether one overflowed a double."""

    def __init__(self) -> None:
        self.beyond = False

    def _mark(self, text: str) -> _Beyond:
        self.beyond = True
        return _Beyond(text)

    def float(self, text: str) -> float | _Beyond:
        value = float(text)
        return self._mark(text) if math.isinf(value) else value

    def int(self, text: str) -> int | _Beyond:
        if len(text.lstrip("-")) > _MAX_DIGITS:  # before int(), which refuses over 4300 digits
            return self._mark(text)
        value = int(text)
        try:
            float(value)
        except OverflowError:
            return self._mark(text)
        return value


def loads_strict(body: bytes | str) -> Any:
    """Parse ``body``; anything refused raises :class:`json.JSONDecodeError` (FastAPI's 'invalid JSON')."""
    try:
        text = body.decode("utf-8-sig") if isinstance(body, bytes) else body
        numbers = _Numbers()
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=numbers.float, parse_int=numbers.int)
    except Refused:
        raise
    except json.JSONDecodeError as exc:  # FastAPI keeps only the message, which says what but not where
        raise json.JSONDecodeError(f"{exc.msg} at line {exc.lineno}, column {exc.colno}", exc.doc, exc.pos) from None
    except UnicodeDecodeError as exc:
        raise Refused(f"it is not UTF-8 text (byte {exc.start} cannot be decoded)") from None
    except RecursionError:
        raise Refused(f"it nests arrays and objects deeper than {MAX_DEPTH} levels") from None
    if numbers.beyond or text.count("{") + text.count("[") > MAX_DEPTH or _SURROGATE_ESCAPE.search(text):
        _check_tree(value, "", 0)
    return value


def _check_tree(value: Any, path: str, depth: int) -> None:
    if isinstance(value, _Beyond):
        raise OutOfRange(path or "body", value)
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise Refused(f"{path or 'the body'} holds a lone UTF-16 surrogate escape, which is not Unicode text")
        return
    if depth >= MAX_DEPTH and isinstance(value, dict | list):
        raise Refused(f"it nests arrays and objects deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else key
            _check_tree(key, f"a key in {path or 'the body'}", depth)
            _check_tree(item, inner, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_tree(item, f"{path}[{i}]", depth + 1)


def parse_json(raw: bytes) -> Any:
    """A body as strict JSON, for routes that read it themselves, refused as FastAPI's parsing would be."""
    if not raw.strip():
        raise errors.BadRequestFormat("the request body is empty; a JSON object is required")
    try:
        return loads_strict(raw)
    except OutOfRange as exc:
        raise errors.InvalidRequest(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise errors.BadRequestFormat(f"the request body is not valid JSON: {exc.msg}") from None


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """Every route's class: strict JSON bodies, and path parameters with their encoded slashes back
    (:mod:`visionloop.http.slashes`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            scope = request.scope
            if scope.get("path_params"):
                scope["path_params"] = restore(scope["path_params"])
            return await handler(StrictJSONRequest(scope, request.receive))

        return strict_handler
