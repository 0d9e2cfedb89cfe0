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


def name_unknown_fields(exc: errors.ApiError, body: Wire) -> errors.ApiError:
    """``exc``, naming the unknown fields beside the field it says is required, if there are any."""
    required = _REQUIRED.match(exc.details)
    if required is None:
        return exc
    found = unknown_beside(body, required["path"])
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
