"""Response objects of the Clarifai v2 wire format."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from visionloop import errors, status
from visionloop.inference.catalog import DETECTION, FOCUS
from visionloop.inference.predictions import Color, ConceptScore, Focus, Region
from visionloop.services.inputs import ItemResult, StoredInput
from visionloop.services.models import ModelView
from visionloop.services.predict import OutputConfig, PredictItem, apply_output_config
from visionloop.store.tables import Concept, ModelVersion


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


def image_url(base_url: str, input_id: str) -> str:
    """Where a stored input's image is served (``GET /v2/inputs/{id}/image``), under ``base_url``."""
    return f"{base_url}/v2/inputs/{quote(input_id, safe='')}/image"


def input_obj(stored: StoredInput, *, base_url: str, image_bytes: bytes | None = None) -> dict[str, Any]:
    """An input; ``data.image`` carries the original URL, or the bytes as base64 when asked, or
    else where this server serves the stored image (built from ``base_url``). One whose download
    failed has its URL and no ``image_info``, and its status names the cause."""
    row = stored.row
    image: dict[str, Any] = {}
    if row.url:
        image["url"] = row.url
    if image_bytes is not None:
        image["base64"] = base64.b64encode(image_bytes).decode()
    if not image:
        image["url"] = image_url(base_url, row.id)
    if row.digest is not None:
        image["image_info"] = {"width": row.width, "height": row.height}
    data: dict[str, Any] = {
        "image": image,
        "concepts": [{"id": a.concept_id, "name": a.concept_id, "value": a.value, "app_id": row.app_id}
                     for a in stored.concepts],
        "metadata": row.meta or {},
    }
    if stored.regions:
        data["regions"] = [{"id": r.id, "region_info": {"bounding_box": {
            "top_row": r.top_row, "left_col": r.left_col, "bottom_row": r.bottom_row, "right_col": r.right_col}},
            "data": {"concepts": [{"id": c["id"], "name": c["id"], "value": c["value"], "app_id": row.app_id}
                                  for c in r.concepts]}} for r in stored.regions]
    if row.geo_latitude is not None and row.geo_longitude is not None:
        data["geo"] = {"geo_point": {"latitude": row.geo_latitude, "longitude": row.geo_longitude}}
    return {
        "id": row.id,
        "data": data,
        "created_at": timestamp(row.created_at),
        "modified_at": timestamp(row.modified_at),
        "status": (item_error(errors.InputDownloadFailed.because(row.status_details or ""))
                   if row.status_code == status.INPUT_FAILED else status.envelope(row.status_code)),
    }


def batch_status(results: Iterable[ItemResult | PredictItem], *, kept: bool = False) -> tuple[dict[str, Any], int]:
    """Overall status and HTTP code of a batch: Ok, MIXED_STATUS, or the shared failure. ``kept``:
    something was stored (an input is kept although its download failed), so the batch is no
    refusal, whose answer would say nothing changed."""
    results = list(results)
    failed = [r.error for r in results if r.error is not None]
    if not failed:
        return status.envelope(status.SUCCESS), 200
    if len(failed) < len(results) or kept:
        return status.envelope(status.MIXED_STATUS), 200
    codes = {e.code for e in failed}
    first = failed[0]
    if len(codes) == 1:
        return status.envelope(first.code, first.description, first.details), first.http_status
    return status.envelope(status.FAILURE, "All items failed", "; ".join(e.details for e in failed[:5])), 400


def item_error(exc: errors.ApiError) -> dict[str, Any]:
    return status.envelope(exc.code, exc.description, exc.details)


def model_obj(view: ModelView, *, concepts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A model with the fields the official clients read; ``concepts`` only when asked for."""
    m, v = view.model, view.version
    output_info: dict[str, Any] = {
        "type": view.wire_type, "type_ext": view.wire_type,
        "output_config": {"concepts_mutually_exclusive": False, "closed_environment": False,
                          **(m.output_info or {}).get("output_config", {})},
        "message": "Show output_info with: GET /models/{model_id}/output_info",
    }
    if concepts is not None:
        output_info["data"] = {"concepts": concepts}
    return {
        "id": m.id, "name": m.name, "display_name": m.name, "created_at": timestamp(m.created_at),
        "app_id": m.app_id or "main", "output_info": output_info, "model_version": version_obj(v),
        "model_type_id": view.wire_type,
    }


def version_obj(v: ModelVersion, *, live: dict[str, Any] | None = None) -> dict[str, Any]:
    """A model version; ``live``: metrics just computed from the feedback, shown beside the stored ones."""
    params = v.params or {}
    out: dict[str, Any] = {"id": v.id, "created_at": timestamp(v.created_at), "app_id": v.app_id or "main",
                           "status": status.envelope(v.status_code, details=params.get("error", ""))}
    metrics = {**(v.metrics or {}), **({"live": live} if live is not None else {})}
    if metrics:  # the Python client's evaluate() reads metrics.status
        out["metrics"] = {"status": status.envelope(status.MODEL_EVALUATED), **metrics}
    out["visionloop"] = {k: params[k] for k in ("kind", "promoted", "decision", "trained_on", "reliability",
                                                "skipped", "learned") if k in params}
    if v.parent_id:
        out["visionloop"]["parent_id"] = v.parent_id
    return out


def concept_list(view: ModelView, items: Iterable[tuple[str, str]], app_id: str) -> list[dict[str, Any]]:
    """The concepts a model version outputs, as model objects list them; ``created_at`` is the
    version's (when the model took the concept on): the Python client builds each into a Concept
    and requires one."""
    created = timestamp(view.version.created_at)
    return [{"id": cid, "name": name, "value": 1.0, "app_id": app_id, "created_at": created} for cid, name in items]


def _concepts(items: Iterable[ConceptScore], app_id: str) -> list[dict[str, Any]]:
    return [{"id": c.id, "name": c.name, "value": round(c.value, 6), "app_id": app_id} for c in items]


def output_obj(view: ModelView, version: ModelVersion, item: PredictItem, config: OutputConfig,
               app_id: str) -> dict[str, Any]:
    image: dict[str, Any] = {}
    if item.source is not None and item.source.url:
        image["url"] = item.source.url
    elif item.source is not None and item.source.base64:
        image["base64"] = item.source.base64
    out: dict[str, Any] = {
        "id": item.output_id or "",
        "status": status.envelope(status.SUCCESS) if item.error is None else item_error(item.error),
        "created_at": timestamp(item.created_at) if item.created_at else None,
        "model": {**model_obj(view), "model_version": version_obj(version)},
        "input": {"id": item.input_id, "data": {"image": image}},
        "data": {},
    }
    pred = item.prediction
    if pred is None:
        return out
    if view.model.model_type == "concept":
        out["data"]["concepts"] = _concepts(apply_output_config(pred, config), app_id)
    if pred.regions or view.model.model_type in (DETECTION, FOCUS):
        out["data"]["regions"] = [_region(r, app_id) for r in pred.regions if r.value >= config.min_value]
    if pred.colors:
        out["data"]["colors"] = [_color(c) for c in pred.colors]
    if pred.focus is not None:
        out["data"]["focus"] = _focus(pred.focus)
    if pred.embedding is not None and view.model.model_type == "embedding":
        out["data"]["embeddings"] = [{"vector": [float(x) for x in pred.embedding],
                                      "num_dimensions": int(pred.embedding.shape[0])}]
    return out


def _region(r: Region, app_id: str) -> dict[str, Any]:
    data: dict[str, Any] = {"concepts": _concepts(r.concepts, app_id)}
    if r.focus is not None:
        data["focus"] = _focus(r.focus)
    return {"id": r.id, "value": round(r.value, 6),
            "region_info": {"bounding_box": {"top_row": r.box.top, "left_col": r.box.left,
                                             "bottom_row": r.box.bottom, "right_col": r.box.right}},
            "data": data}


def _color(c: Color) -> dict[str, Any]:
    return {"raw_hex": c.raw_hex, "w3c": {"hex": c.w3c_hex, "name": c.w3c_name}, "value": round(c.value, 6)}


def _focus(f: Focus) -> dict[str, Any]:
    return {"value": round(f.value, 6), "density": round(f.density, 6)}
