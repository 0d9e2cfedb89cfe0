"""/models/{id}/versions: train from feedback, evaluate, promote and roll back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from visionloop.http import wire
from visionloop.http.deps import CoreDep, ModelsCaller
from visionloop.http.schemas import TrainRequest
from visionloop.http.strict_json import StrictJSONRoute

router = APIRouter(tags=["learning"], route_class=StrictJSONRoute)


@router.post("/models/{model_id}/versions")
def train_version(model_id: str, body: TrainRequest, caller: ModelsCaller, core: CoreDep) -> dict[str, Any]:
    """Queue a new version trained from the app's annotations and feedback (Clarifai's status codes)."""
    reliability = body.visionloop.reliability if body.visionloop and body.visionloop.reliability is not None else True
    version = core.learning.request(caller.app_id, model_id, reliability=reliability)
    view = core.models.get(caller.app_id, model_id)
    return wire.ok(model={**wire.model_obj(view), "model_version": wire.version_obj(version)})


@router.post("/models/{model_id}/versions/{version_id}/activate")
def activate_version(model_id: str, version_id: str, caller: ModelsCaller, core: CoreDep) -> dict[str, Any]:
    """Make a trained version the app's active one: promotion by hand, or a one-call rollback."""
    return wire.ok(model=wire.model_obj(core.learning.activate(caller.app_id, model_id, version_id)))


@router.get("/models/{model_id}/versions/{version_id}/metrics")
def get_metrics(model_id: str, version_id: str, caller: ModelsCaller, core: CoreDep) -> dict[str, Any]:
    view = core.models.get(caller.app_id, model_id)
    version = core.models.version(caller.app_id, view.model, version_id)
    live = (version.metrics or {}).get("live") or core.learning.evaluate(caller.app_id, view, version)
    return wire.ok(model_version=wire.version_obj(version, live=live))


@router.post("/models/{model_id}/versions/{version_id}/metrics")
def recompute_metrics(model_id: str, version_id: str, caller: ModelsCaller, core: CoreDep) -> dict[str, Any]:
    view = core.models.get(caller.app_id, model_id)
    version = core.models.version(caller.app_id, view.model, version_id)
    live = core.learning.evaluate(caller.app_id, view, version)
    return wire.ok(model_version=wire.version_obj(version, live=live))
