"""Response objects of the Clarifai v2 wire format."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable
from typing import Any

from visionloop import errors, status
from visionloop.services.inputs import ItemResult, StoredInput
from visionloop.store.tables import Concept


def timestamp(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ok(**fields: Any) -> dict[str, Any]:
    return {"status": status.envelope(status.SUCCESS), **fields}


def concept(row: Concept) -> dict[str, Any]:
    out = {"id": row.id, "name": row.name, "value": 1.0, "created_at": timestamp(row.created_at),
           "app_id": row.app_id}
    if row.language:
        out["language"] = row.language
    return out


def input_obj(stored: StoredInput, *, image_bytes: bytes | None = None) -> dict[str, Any]:
    """An input; ``data.image`` carries the original URL, or the bytes as base64 when asked."""
    row = stored.row
    image: dict[str, Any] = {}
    if row.url:
        image["url"] = row.url
    if image_bytes is not None:
        image["base64"] = base64.b64encode(image_bytes).decode()
    if not image:
        image["url"] = f"visionloop://blobs/{row.digest}"
    image["image_info"] = {"width": row.width, "height": row.height}
    return {
        "id": row.id,
        "data": {
            "image": image,
            "concepts": [{"id": a.concept_id, "name": a.concept_id, "value": a.value, "app_id": row.app_id}
                         for a in stored.concepts],
            "metadata": row.meta or {},
        },
        "created_at": timestamp(row.created_at),
        "modified_at": timestamp(row.modified_at),
        "status": status.envelope(row.status_code),
    }


def batch_status(results: Iterable[ItemResult]) -> tuple[dict[str, Any], int]:
    """Overall status and HTTP code of a batch: Ok, MIXED_STATUS, or the shared failure."""
    results = list(results)
    failed = [r.error for r in results if r.error is not None]
    if not failed:
        return status.envelope(status.SUCCESS), 200
    if len(failed) < len(results):
        return status.envelope(status.MIXED_STATUS), 200
    codes = {e.code for e in failed}
    first = failed[0]
    if len(codes) == 1:
        return status.envelope(first.code, first.description, first.details), first.http_status
    return status.envelope(status.FAILURE, "All items failed", "; ".join(e.details for e in failed[:5])), 400


def item_error(exc: errors.ApiError) -> dict[str, Any]:
    return status.envelope(exc.code, exc.description, exc.details)
