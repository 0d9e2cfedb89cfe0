"""A refusal for a missing field names the unknown fields found beside it.

Unknown fields stay accepted (the official clients send some, such as ``user_app_id``), so a
misspelt ``"imgae"`` used to be dropped in silence and the request refused for its missing
``image``. When a refusal says a field is required, the unknown fields of the objects along that
field's path that lack the next step (or are the field itself) are named: they are where the
missing value most likely went.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from visionloop import errors
from visionloop.http.schemas import Wire

_REQUIRED = re.compile(r"^(?P<path>[A-Za-z_][\w.\[\]]*): .*\b(?:required|needs)\b")
_STEP = re.compile(r"([A-Za-z_]\w*)|\[(\d+)\]")


def unknown_beside(body: Wire, path: str) -> list[str]:
    """Unknown fields of the objects on ``path`` (``inputs[0].data.image``) where it is missing."""
    found: list[str] = []
    node: Any = body
    for name, index in _STEP.findall(path):
        if index:
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
            continue
        if not isinstance(node, Wire) or name not in type(node).model_fields:  # not an unknown field's value
            return found
        if name not in node.model_fields_set or getattr(node, name, None) is None:
            found += node.unknown_fields
        node = getattr(node, name, None)
    if isinstance(node, Wire):  # the field is there but lacks what it needs (an image without base64 or url)
        found += node.unknown_fields
    return found


def unknown_beside_raw(body: Any, schema: dict[str, Any], path: str) -> list[str]:
    """:func:`unknown_beside` for a body parsed by hand, whose fields its JSON Schema documents."""
    found: list[str] = []
    node, node_schema = body, schema
    for name, index in _STEP.findall(path):
        if index:
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
            node_schema = _child(node_schema, "items")
            continue
        if not isinstance(node, dict):
            return found
        known = _names(node_schema)
        if node.get(name) is None:
            found += [str(k) for k in node if k not in known]
        node, node_schema = node.get(name), _child(node_schema, "properties", name)
    if isinstance(node, dict):
        known = _names(node_schema)
        found += [str(k) for k in node if k not in known]
    return found


def _branches(schema: dict[str, Any]) -> list[dict[str, Any]]:
    out = [schema]
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, ()):
            out += _branches(branch)
    return out


def _names(schema: dict[str, Any]) -> set[str]:
    return {name for branch in _branches(schema) for name in branch.get("properties", {})}


def _child(schema: dict[str, Any], key: str, name: str | None = None) -> dict[str, Any]:
    found = [b[key] if name is None else b[key][name] for b in _branches(schema)
             if key in b and (name is None or name in b[key])]
    return {"anyOf": found}


def name_unknown_fields(exc: errors.ApiError, body: Any, *, schema: dict[str, Any] | None = None
                        ) -> errors.ApiError:
    """``exc``, naming the unknown fields beside the field it says is required, if there are any.
    ``body`` is a parsed request, or with ``schema`` the raw JSON of one parsed by hand."""
    required = _REQUIRED.match(exc.details)
    if required is None:
        return exc
    found = (unknown_beside(body, required["path"]) if schema is None
             else unknown_beside_raw(body, schema, required["path"]))
    note = beside_note(found)
    return exc.noting(note) if found and note not in exc.details else exc  # one error may stand for several items


def beside_note(found: list[str]) -> str:
    return f"unknown fields beside it, which were ignored: {', '.join(map(repr, dict.fromkeys(found)))}"


def unknown_in(raw: Any) -> list[str]:
    """Keys of a raw JSON object that no request schema knows (for refusals made before parsing ended)."""
    if not isinstance(raw, dict):
        return []
    return [str(k) for k in raw if k not in _known_names()]


@functools.cache
def _known_names() -> frozenset[str]:
    names: set[str] = set()
    pending: list[type[Wire]] = [Wire]
    while pending:
        cls = pending.pop()
        names.update(cls.model_fields)
        pending.extend(cls.__subclasses__())
    return frozenset(names)
