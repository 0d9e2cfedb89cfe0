"""/models: the registry — create an app's own concept model, list, get (by id or name), versions,
output_info, searches."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from visionloop import errors
from visionloop.core import VisionLoop
from visionloop.http import wire
from visionloop.http.deps import BaseUrlDep, CoreDep, ModelsCaller, PageDep
from visionloop.http.schemas import (
    CreateModelRequest,
    DeleteModelsRequest,
    ModelIn,
    ModelSearchRequest,
    PatchModelsRequest,
)
from visionloop.http.strict_json import StrictJSONRoute
from visionloop.services.concepts import NewConcept
from visionloop.services.models import CREATABLE_TYPES, ModelView, NewModel
from visionloop.services.paging import Page

router = APIRouter(tags=["models"], route_class=StrictJSONRoute)
# clarifai-grpc lists models at /v2/users/{user_id}/models (it fills every path field it can)
user_router = APIRouter(tags=["models"], route_class=StrictJSONRoute)


@user_router.get("/models")
@router.get("/models")
def list_models(caller: ModelsCaller, core: CoreDep, page: PageDep) -> dict[str, Any]:
    return wire.ok(models=[wire.model_obj(v) for v in core.models.list(caller.app_id, page)])


@router.post("/models")
def create_model(body: CreateModelRequest, caller: ModelsCaller, core: CoreDep) -> dict[str, Any]:
    """An app's own concept or detection model over chosen concepts; it predicts once a version trained."""
    view = core.models.create(caller.app_id, _new_model(body.model))
    return wire.ok(model=_with_concepts(view, caller.app_id, core))


def _new_model(m: ModelIn, *, unset: bool | None = False) -> NewModel:
    """The model a body describes; an output_config flag it leaves out is ``unset``."""
    info = m.output_info
    config = info.output_config if info else None
    concepts = info.data.concepts if info and info.data else []
    flags = {k: unset if config is None or getattr(config, k) is None else getattr(config, k)
             for k in ("concepts_mutually_exclusive", "closed_environment")}
    return NewModel(m.id, m.name, [NewConcept(c.id or "", c.name) for c in concepts],
                    hyper_params=config.hyper_params if config else None, model_type=_model_type(m),
                    **flags)


@router.patch("/models")
def patch_models(body: PatchModelsRequest, caller: ModelsCaller, core: CoreDep) -> dict[str, Any]:
    """Change the app's own models: name, output_config and concepts (action merge, remove or overwrite)."""
    views = [core.models.patch(caller.app_id, body.action or "merge", _new_model(m, unset=None)) for m in body.models]
    return wire.ok(models=[_with_concepts(v, caller.app_id, core) for v in views])


@router.delete("/models")
def delete_models(body: DeleteModelsRequest, caller: ModelsCaller, core: CoreDep) -> dict[str, Any]:
    """Delete the app's own models (``delete_all``, or ``ids``); built-ins stay. See ModelService.delete."""
    if not body.delete_all and not body.ids:
        raise errors.InvalidRequest("ids: name the models to delete, or send delete_all: true")
    core.models.delete(caller.app_id, None if body.delete_all else body.ids)
    return wire.ok()


@router.delete("/models/{model_id}")
def delete_model(model_id: str, caller: ModelsCaller, core: CoreDep) -> dict[str, Any]:
    core.models.delete(caller.app_id, [model_id])
    return wire.ok()


@router.get("/models/{model_id}/inputs")
def list_model_inputs(model_id: str, caller: ModelsCaller, core: CoreDep, page: PageDep,
                      base_url: BaseUrlDep) -> dict[str, Any]:
    """The inputs a model's training reads: the app's inputs, as Clarifai listed them."""
    core.models.get(caller.app_id, model_id)
    return wire.ok(inputs=[wire.input_obj(i, base_url=base_url) for i in core.inputs.list(caller.app_id, page, images_only=True)])


def _model_type(m: ModelIn) -> str:
    """The kind of model asked for by ``output_info.type`` (or ``model_type_id``): concepts by default."""
    field, asked = next(((f, v) for f, v in (("model.output_info.type", m.output_info and m.output_info.type),
                                             ("model.model_type_id", m.model_type_id)) if v),
                        ("model.output_info.type", None))
    kind = CREATABLE_TYPES.get(asked or "concept")
    if kind is None:
        raise errors.InvalidRequest(f"{field}: {asked[:40]!r} is not a model type this server creates; use one of "
                                    f"{', '.join(sorted(CREATABLE_TYPES))}")
    return kind


def _with_concepts(view: ModelView, app_id: str, core: VisionLoop) -> dict[str, Any]:
    """The model with the concepts its version can output, as output_info routes render it (no
    ``data`` when it has none: the Python client reads an empty ``data`` as missing concepts)."""
    concepts = wire.concept_list(view, core.models.concepts_of(view), app_id)
    return wire.model_obj(view, concepts=concepts or None)


@router.post("/models/searches")
def search_models(body: ModelSearchRequest, caller: ModelsCaller, core: CoreDep, page: PageDep) -> dict[str, Any]:
    q = body.model_query
    if body.pagination is not None and (body.pagination.page or body.pagination.per_page):
        page = Page.of(body.pagination.page, body.pagination.per_page, default=page.per_page,
                       cap=core.settings.max_per_page)
    views = core.models.search(caller.app_id, q.name, q.type or q.model_type_id, page)
    return wire.ok(models=[wire.model_obj(v) for v in views])


@router.get("/models/{model_id}")
def get_model(model_id: str, caller: ModelsCaller, core: CoreDep) -> dict[str, Any]:
    return wire.ok(model=wire.model_obj(core.models.get(caller.app_id, model_id)))


@router.get("/models/{model_id}/output_info")
def get_output_info(model_id: str, caller: ModelsCaller, core: CoreDep) -> dict[str, Any]:
    return wire.ok(model=_with_concepts(core.models.get(caller.app_id, model_id), caller.app_id, core))


@router.get("/models/{model_id}/versions/{version_id}/output_info")
def get_version_output_info(model_id: str, version_id: str, caller: ModelsCaller, core: CoreDep) -> dict[str, Any]:
    view = core.models.get(caller.app_id, model_id)
    pinned = ModelView(view.model, core.models.version(caller.app_id, view.model, version_id))
    return wire.ok(model=_with_concepts(pinned, caller.app_id, core))


@router.get("/models/{model_id}/versions")
def list_versions(model_id: str, caller: ModelsCaller, core: CoreDep, page: PageDep) -> dict[str, Any]:
    view = core.models.get(caller.app_id, model_id)
    return wire.ok(model_versions=[wire.version_obj(v) for v in core.models.versions(caller.app_id, view.model, page)])


@router.get("/models/{model_id}/versions/{version_id}")
def get_version(model_id: str, version_id: str, caller: ModelsCaller, core: CoreDep) -> dict[str, Any]:
    view = core.models.get(caller.app_id, model_id)
    return wire.ok(model_version=wire.version_obj(core.models.version(caller.app_id, view.model, version_id)))
