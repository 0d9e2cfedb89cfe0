"""The model registry: built-in models shared by every app, app-owned versions on top of them.

A model version is immutable. Which version an app predicts with when it names none is the
app's *active* version of that model (promotion and rollback move it), else the base version.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from sqlalchemy import Select, and_, bindparam, delete, func, or_, select

from visionloop import errors, status
from visionloop.models.catalog import BUILTIN, CONCEPT, DETECTION, EMBEDDING, ModelSpec
from visionloop.models.predictors import Predictor, base_predictor
from visionloop.models.runtime import ModelRuntime
from visionloop.services.paging import Page
from visionloop.services.short_cache import ShortCache
from visionloop.store.db import Database, serialize
from visionloop.store.tables import ActiveVersion, Model, ModelVersion, utcnow

SHARED = ""  # app_id of the built-in models and their base versions

WIRE_TYPES = {CONCEPT: "concept", DETECTION: "detection", EMBEDDING: "embed"}
RUNTIME_TYPES = {"face": "facedetect"}

VersionLoader = Callable[[ModelVersion, Model, Predictor], Predictor]


def _views() -> Select[tuple[Model, ModelVersion]]:
    """Models an app (bound as ``app_id``) sees, each with the version it predicts with, in one
    statement: the app's active version if it promoted one, else the model's base version (the
    first one without a parent, of the model's own app). Built once: building costs more than running."""
    app_id = bindparam("app_id")
    base = (select(ModelVersion.id)
            .where(ModelVersion.model_pk == Model.pk, ModelVersion.app_id == Model.app_id,
                   ModelVersion.parent_id.is_(None))
            .order_by(ModelVersion.created_at).limit(1).correlate(Model).scalar_subquery())
    return (select(Model, ModelVersion)
            .outerjoin(ActiveVersion, and_(ActiveVersion.model_pk == Model.pk, ActiveVersion.app_id == app_id))
            .join(ModelVersion, ModelVersion.id == func.coalesce(ActiveVersion.version_id, base), isouter=True)
            .where(or_(Model.app_id == SHARED, Model.app_id == app_id)))


_VIEWS = _views()
_VIEW_BY_REF = _VIEWS.where(or_(Model.id == bindparam("ref"), Model.name == bindparam("ref")))
_VIEW_BY_PK = _VIEWS.where(Model.pk == bindparam("pk"))


@dataclasses.dataclass(frozen=True)
class ModelView:
    """A model as one app sees it: the model and the version it predicts with by default."""

    model: Model
    version: ModelVersion

    @property
    def wire_type(self) -> str:
        return RUNTIME_TYPES.get(self.model.runtime, WIRE_TYPES[self.model.model_type])


class ModelService:
    def __init__(self, db: Database, runtime: ModelRuntime) -> None:
        self.db = db
        self.runtime = runtime
        self._predictors: dict[str, Predictor] = {}
        self._lock = threading.Lock()
        self.version_loaders: dict[str, VersionLoader] = {}
        self._views: ShortCache[ModelView] = ShortCache()
        self._seed(BUILTIN)

    def _seed(self, specs: tuple[ModelSpec, ...]) -> None:
        """Make sure every built-in model and its base version exist (idempotent, safe to race)."""
        with self.db.transaction() as s:
            serialize(s, "visionloop:seed-models")  # processes starting together on one PostgreSQL
            for spec in specs:
                if s.scalar(select(Model).where(Model.app_id == SHARED, Model.id == spec.id)) is None:
                    model = Model(app_id=SHARED, id=spec.id, name=spec.name, model_type=spec.model_type,
                                  runtime=spec.runtime)
                    s.add(model)
                    s.flush()
                    s.add(ModelVersion(id=spec.base_version_id, model_pk=model.pk, app_id=SHARED,
                                       status_code=status.MODEL_TRAINED,
                                       params={"kind": "base", "description": spec.description}))

    # -- lookup ---------------------------------------------------------------------------------
    def list(self, app_id: str, page: Page) -> list[ModelView]:
        with self.db.session() as s:
            rows = s.execute(_VIEWS.order_by(Model.app_id, Model.created_at, Model.pk)
                             .offset(page.offset).limit(page.per_page), {"app_id": app_id}).all()
        return [_view(m, v) for m, v in rows]

    def get(self, app_id: str, ref: str) -> ModelView:
        """By id, then by name; the app's own models shadow built-ins. Views are shared read-only
        and may be a moment old (:mod:`visionloop.services.short_cache`)."""
        return self._views.get((app_id, ref), lambda: self._get(app_id, ref))

    def _get(self, app_id: str, ref: str) -> ModelView:
        with self.db.session() as s:
            rows = s.execute(_VIEW_BY_REF, {"app_id": app_id, "ref": ref}).all()
        if not rows:
            raise errors.ModelNotFound(f"model {ref!r} does not exist")
        model, version = min(rows, key=lambda r: (r[0].id != ref, r[0].app_id != app_id))
        return _view(model, version)

    def search(self, app_id: str, name: str | None, model_type: str | None, page: Page) -> list[ModelView]:
        views = self.list(app_id, Page(1, 10_000))
        if name:
            pattern = name.lower()
            views = [v for v in views if _matches(pattern, v.model.name.lower()) or v.model.id == name]
        if model_type:
            views = [v for v in views if model_type in (v.wire_type, v.model.model_type)]
        return views[page.offset:page.offset + page.per_page]

    def versions(self, app_id: str, model: Model, page: Page) -> list[ModelVersion]:
        with self.db.session() as s:
            return list(s.scalars(select(ModelVersion)
                                  .where(ModelVersion.model_pk == model.pk,
                                         or_(ModelVersion.app_id == app_id, ModelVersion.app_id == SHARED))
                                  .order_by(ModelVersion.created_at.desc(), ModelVersion.id)
                                  .offset(page.offset).limit(page.per_page)))

    def version(self, app_id: str, model: Model, version_id: str) -> ModelVersion:
        with self.db.session() as s:
            v = s.get(ModelVersion, version_id)
        if v is None or v.model_pk != model.pk or v.app_id not in (app_id, SHARED):
            raise errors.ModelNotFound(f"model {model.id!r} has no version {version_id!r}")
        return v

    def active_version(self, app_id: str, model: Model) -> ModelVersion:
        with self.db.session() as s:
            row = s.execute(_VIEW_BY_PK, {"app_id": app_id, "pk": model.pk}).first()
        if row is None:
            raise errors.ModelNotFound(f"model {model.id!r} does not exist")
        return _view(*row).version

    def set_active(self, app_id: str, model: Model, version_id: str) -> None:
        """Promote (or roll back to) a version for one app; other apps are untouched."""
        self.version(app_id, model, version_id)
        with self.db.transaction() as s:
            row = s.get(ActiveVersion, (app_id, model.pk))
            if row is None:
                s.add(ActiveVersion(app_id=app_id, model_pk=model.pk, version_id=version_id))
            else:
                row.version_id = version_id
                row.modified_at = utcnow()
        self._views.clear()

    def clear_active(self, app_id: str, model: Model) -> None:
        """Forget the app's promoted version: it predicts with the base version again."""
        with self.db.transaction() as s:
            s.execute(delete(ActiveVersion).where(ActiveVersion.app_id == app_id, ActiveVersion.model_pk == model.pk))
        self._views.clear()

    def concepts_of(self, view: ModelView) -> list[tuple[str, str]]:
        """(id, name) of every concept the app's version of a model can output."""
        params = view.version.params or {}
        learned = [(c["id"], c["name"]) for c in params.get("concepts", [])]
        if view.model.runtime == "general":
            base = [(c.id, c.name) for c in self.runtime.vocabulary.concepts]
            known = {cid for cid, _ in base}
            return base + [c for c in learned if c[0] not in known]
        if view.model.runtime == "face":
            return [("face", "face")]
        return learned

    # -- predictors -----------------------------------------------------------------------------
    def predictor(self, model: Model, version: ModelVersion) -> Predictor:
        """The predictor of a version, built once and cached (versions are immutable)."""
        cached = self._predictors.get(version.id)
        if cached is not None:
            return cached
        with self._lock:
            if version.id not in self._predictors:
                base = base_predictor(self.runtime, model.runtime)
                kind = (version.params or {}).get("kind", "base")
                if kind != "base":
                    loader = self.version_loaders.get(kind)
                    if loader is None:
                        raise errors.ModelInvalid(f"model version {version.id} has unknown kind {kind!r}")
                    base = loader(version, model, base)
                self._predictors[version.id] = base
            return self._predictors[version.id]


def _view(model: Model, version: ModelVersion | None) -> ModelView:
    if version is None:
        raise errors.ModelNotFound(f"model {model.id!r} has no trained version yet")
    return ModelView(model, version)


def _matches(pattern: str, name: str) -> bool:
    """Case-insensitive name match with ``*`` wildcards (a plain name matches exactly)."""
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern.replace("[", "[[]"))
