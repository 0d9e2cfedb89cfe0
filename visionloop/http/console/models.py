"""/console/models: each model's versions with the active one marked; train, promote and roll
back (each confirmed, each written to the audit log shown on the page); a version's quality.

Everything here needs the ``models`` scope, as ``/v2/models/...`` does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.responses import Response

from visionloop import status
from visionloop.http.console import charts
from visionloop.http.console.render import ConsoleRoute, from_htmx, page, see_other
from visionloop.http.console.session import FormDep, Session, SessionDep, need
from visionloop.http.deps import CoreDep
from visionloop.learning.curves import calibration_points, pr_curves
from visionloop.services.models import ModelView
from visionloop.services.paging import Page
from visionloop.services.training.detection_learning import DETECTOR_KIND
from visionloop.services.training.report import PLOTTING, confusion, quality_points
from visionloop.store.tables import ModelVersion

router = APIRouter(route_class=ConsoleRoute)
_VERSIONS_SHOWN = 100
_BUSY = (status.MODEL_QUEUED_FOR_TRAINING, status.MODEL_TRAINING)
_CHANGED = {"HX-Trigger": "versions-changed"}  # htmx reloads the page's versions table


def _view(session: Session, core: CoreDep, model_id: str, what: str) -> ModelView:
    need(session, "models", what)
    return core.models.get(session.caller.app_id, model_id)


def _version(session: Session, core: CoreDep, model_id: str, version_id: str, what: str
             ) -> tuple[ModelView, ModelVersion]:
    view = _view(session, core, model_id, what)
    return view, core.models.version(session.caller.app_id, view.model, version_id)


def _model_url(model_id: str) -> str:
    return f"/console/models/{quote(model_id, safe='')}"


@router.get("/models")
def models_page(request: Request, session: SessionDep, core: CoreDep) -> Response:
    need(session, "models", "The models page")
    views = core.models.list(session.caller.app_id, Page(1, core.settings.max_per_page))
    return page(request, "models.html", {"views": views})


def _versions(session: Session, core: CoreDep, view: ModelView) -> dict[str, Any]:
    """What the versions table shows (the newest versions, the active one, those still training)
    and the model's audit log."""
    versions = core.models.versions(session.caller.app_id, view.model, Page(1, _VERSIONS_SHOWN))
    return {"view": view, "versions": versions, "active_id": view.version.id, "trained": status.MODEL_TRAINED,
            "busy": [v for v in versions if v.status_code in _BUSY], "busy_codes": _BUSY,
            "actions": core.console.actions(session.caller.app_id, model_id=view.model.id)}


@router.get("/models/{model_id}")
def model_page(model_id: str, request: Request, session: SessionDep, core: CoreDep) -> Response:
    view = _view(session, core, model_id, "A model's page")
    return page(request, "model.html", {**_versions(session, core, view), "done": request.query_params.get("done", "")})


@router.get("/models/{model_id}/versions")
def versions_table(model_id: str, request: Request, session: SessionDep, core: CoreDep) -> Response:
    """The versions table and audit log alone, for htmx to swap in when a training ends."""
    return page(request, "versions.html", _versions(session, core, _view(session, core, model_id, "A model's page")))


@router.get("/models/{model_id}/versions/{version_id}/progress")
def progress(model_id: str, version_id: str, request: Request, session: SessionDep, core: CoreDep) -> Response:
    """A version's training progress (stage and share of the stages passed), polled by htmx each
    second until it ends; then the page's versions table reloads."""
    view, version = _version(session, core, model_id, version_id, "A version's training progress")
    return _progress(request, view, version)


def _progress(request: Request, view: ModelView, version: ModelVersion) -> Response:
    response = page(request, "progress.html", {"view": view, "v": version, "busy_codes": _BUSY})
    if version.status_code not in _BUSY:
        response.headers.update(_CHANGED)
    return response


@router.post("/models/{model_id}/train")
def train(model_id: str, request: Request, session: SessionDep, core: CoreDep, _: FormDep) -> Response:
    """Queue a new version (trained at once when the server runs no training worker); from htmx,
    answer its progress, which then polls itself."""
    view = _view(session, core, model_id, "Training")
    version = core.learning.request(session.caller.app_id, view.model.id)
    core.console.record(session.caller, "train", view.model.id, version.id,
                        status.DESCRIPTIONS.get(version.status_code, str(version.status_code)))
    if from_htmx(request):
        response = _progress(request, view, version)
        response.headers.update(_CHANGED)  # the new version joins the table at once
        return response
    return see_other(f"{_model_url(view.model.id)}?done=train#v-{quote(version.id, safe='')}")


@router.get("/models/{model_id}/versions/{version_id}/activate")
def confirm_activate(model_id: str, version_id: str, request: Request, session: SessionDep,
                     core: CoreDep) -> Response:
    """Activating changes what the app predicts with: the page asks first."""
    view, version = _version(session, core, model_id, version_id, "Promoting or rolling back")
    older = version.created_at < view.version.created_at
    return page(request, "confirm.html", {"view": view, "version": version, "older": older})


@router.post("/models/{model_id}/versions/{version_id}/activate")
def activate(model_id: str, version_id: str, session: SessionDep, core: CoreDep, _: FormDep) -> Response:
    view = _view(session, core, model_id, "Promoting or rolling back")
    before = view.version.id
    core.learning.activate(session.caller.app_id, view.model.id, version_id)
    core.console.record(session.caller, "activate", view.model.id, version_id, f"was {before}")
    return see_other(f"{_model_url(view.model.id)}?done=activate")


@router.get("/models/{model_id}/versions/{version_id}")
def version_page(model_id: str, version_id: str, request: Request, session: SessionDep,
                 core: CoreDep) -> Response:
    """A version's quality from the feedback on its outputs, as the evaluation report shows it."""
    view, version = _version(session, core, model_id, version_id, "A version's quality")
    quality = core.learning.quality(session.caller.app_id, view.model.id, version_id)
    columns, concepts = _per_concept(quality.live)
    names = quality.names or {}
    plots = [("Quality over time", charts.quality_over_time(quality_points(quality.versions)))]
    if quality.names is not None:  # a detection's feedback judges boxes, not scores to sweep
        plots += [("Precision-recall curves", charts.pr_curves(pr_curves(quality.records), names)),
                  ("Calibration", charts.calibration(calibration_points(quality.records)))]
        with PLOTTING:
            figures = [("Top concept: what users said vs what the version said", confusion(quality.live))]
    else:
        figures = [("Example detections on judged images", core.learning.detection_examples(
            session.caller.app_id, quality))] if (version.params or {}).get("kind") == DETECTOR_KIND else []
    return page(request, "version.html", {
        "view": view, "version_id": version_id, "summary": quality.summary, "plots": plots, "figures": figures,
        "holdout": _side_by_side((version.metrics or {}).get("holdout") or {}), "columns": columns,
        "concepts": concepts})


Figures = list[tuple[str, dict[str, Any] | None, dict[str, Any] | None]]


def _side_by_side(holdout: dict[str, Any]) -> list[tuple[str, Figures]]:
    """The held-out figures the promotion decision compared, champion beside challenger: (group,
    [(figure, champion's, challenger's)]); a search ranking's are grouped by query kind."""
    groups = {"": holdout} if "challenger" in holdout else holdout
    out = []
    for group, sides in sorted(groups.items()):
        if not isinstance(sides, dict):
            continue
        champion, challenger = sides.get("champion") or {}, sides.get("challenger") or {}
        out.append((group, [(name, champion.get(name), challenger.get(name))
                            for name in sorted(set(champion) | set(challenger))]))
    return out


def _per_concept(live: dict[str, Any]) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """The live per-concept figures as a table: the columns (estimates first, then counts) and
    one row per concept, the best-evidenced first."""
    concepts = live.get("concepts") or {}
    if not isinstance(concepts, dict) or not concepts:
        return [], []
    first = next(iter(concepts.values()))
    estimates = [k for k, v in first.items() if isinstance(v, dict) and "value" in v]
    counts = [k for k, v in first.items() if isinstance(v, int) and not isinstance(v, bool)]
    rows = sorted(concepts.items(), key=lambda kv: -sum(kv[1].get(k) or 0 for k in counts))
    return estimates + counts, rows
