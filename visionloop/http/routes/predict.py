"""/models/{id}/outputs and /models/{id}/versions/{version_id}/outputs: predict."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from visionloop import errors
from visionloop.core import VisionLoop
from visionloop.http import wire
from visionloop.http.deps import CoreDep, PredictCaller
from visionloop.http.schemas import PredictRequest
from visionloop.http.strict_json import StrictJSONRoute
from visionloop.http.unknown_fields import name_unknown_fields
from visionloop.services.apps import Caller
from visionloop.services.image_source import ImageSource
from visionloop.services.predict import OutputConfig, PredictInput

router = APIRouter(tags=["predict"], route_class=StrictJSONRoute)


def _config(body: PredictRequest) -> OutputConfig:
    cfg = body.model.output_info.output_config if body.model and body.model.output_info else None
    if cfg is None:
        return OutputConfig()
    selected = []
    for i, c in enumerate(cfg.select_concepts):
        ref = c.id or c.name
        if not ref:
            raise errors.ModelInvalid(f"output_config.select_concepts[{i}]: a concept id or name is required")
        selected.append(ref)
    return OutputConfig(min_value=cfg.min_value if cfg.min_value is not None else 0.0,
                        max_concepts=cfg.max_concepts or 20, select_concepts=tuple(selected))


def _inputs(body: PredictRequest) -> list[PredictInput | errors.ApiError]:
    out: list[PredictInput | errors.ApiError] = []
    for i, item in enumerate(body.inputs):
        image = item.data.image
        try:
            source = (ImageSource.of(image.base64, image.url, f"inputs[{i}].data.image")
                      if image is not None and (image.base64 or image.url) else None)
            out.append(PredictInput(item.id, source))
        except errors.ApiError as exc:
            out.append(exc)
    return out


def _predict(model_id: str, version_id: str | None, body: PredictRequest, caller: Caller,
             core: VisionLoop) -> JSONResponse:
    core.usage.check(caller, len(body.inputs))
    config = _config(body)
    parsed = _inputs(body)
    good = [p if isinstance(p, PredictInput) else PredictInput(None, None) for p in parsed]
    view, version, items = core.predict.predict(caller, model_id, version_id, good, config)
    for item, p in zip(items, parsed):
        if isinstance(p, errors.ApiError):
            item.error = p
        if item.error is not None:
            name_unknown_fields(item.error, body)
    envelope, code = wire.batch_status(items)
    outputs = [wire.output_obj(view, version, it, config, caller.app_id) for it in items]
    return JSONResponse({"status": envelope, "outputs": outputs}, status_code=code)


@router.post("/models/{model_id}/outputs")
def predict(model_id: str, body: PredictRequest, caller: PredictCaller, core: CoreDep) -> JSONResponse:
    return _predict(model_id, None, body, caller, core)


@router.post("/models/{model_id}/versions/{version_id}/outputs")
def predict_version(model_id: str, version_id: str, body: PredictRequest, caller: PredictCaller,
                    core: CoreDep) -> JSONResponse:
    return _predict(model_id, version_id, body, caller, core)

