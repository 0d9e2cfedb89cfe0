"""The model registry: built-in models shared by every app, app-owned versions on top of them.

A model version is immutable. Which version an app predicts with when it names none is the
app's *active* version of that model (promotion and rollback move it), else the base version.
"""

from __future__ import annotations

import builtins
import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import BindParameter, Select, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionloop import errors, status
from visionloop.ids import is_valid_model_id, new_id
from visionloop.inference.catalog import (
    BUILTIN,
    COLOR,
    CONCEPT,
    CUSTOM,
    CUSTOM_DETECTOR,
    DETECTION,
    DOMAINS,
    EMBEDDING,
    FOCUS,
    UNAVAILABLE,
    ModelSpec,
)
from visionloop.inference.predictors import NSFW, SFW, Predictor, base_predictor
from visionloop.inference.runtime import ModelRuntime
from visionloop.services.concepts import NAME_MAX, NewConcept, check_concept_id, check_concept_text, ensure_concepts
from visionloop.services.paging import Page
from visionloop.services.short_cache import ShortCache
from visionloop.store.db import Database, serialize
from visionloop.store.tables import DELETED_APP_PREFIX, ActiveVersion, Concept, Model, ModelVersion, utcnow

SHARED = ""  # app_id of the built-in models and their base versions

WIRE_TYPES = {CONCEPT: "concept", DETECTION: "detection", EMBEDDING: "embed", COLOR: "color", FOCUS: "blur"}
# The model types POST /v2/models creates, by the names clients send, and each one's runtime.
CREATABLE_TYPES = {"concept": CONCEPT, "visual-classifier": CONCEPT, "detection": DETECTION,
                   "visual-detector": DETECTION}
CREATED_RUNTIMES = {CONCEPT: CUSTOM, DETECTION: CUSTOM_DETECTOR}
RUNTIME_TYPES = {"face": "facedetect"}

VersionLoader = Callable[[ModelVersion, Model, Predictor], Predictor]
MAX_MODEL_CONCEPTS = 200  # an output stores its top 200 concepts (services/predict.py STORED_CONCEPTS)
CONCEPTS_FIELD = "model.output_info.data.concepts"
PATCH_ACTIONS = ("merge", "remove", "overwrite")


def _views() -> Select[Model, ModelVersion]:
    """Models an app (bound as ``app_id``) sees, each with the version it predicts with, in one
    statement: the app's active version if it promoted one, else the model's base version (the
    first one without a parent, of the model's own app). Built once: building costs more than running."""
    app_id: BindParameter[str] = bindparam("app_id")
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
class NewModel:
    """An app's own concept model as ``POST /v2/models`` asks for it."""

    id: str | None
    name: str | None
    concepts: Sequence[NewConcept]
    concepts_mutually_exclusive: bool | None = False  # None: unchanged (PATCH)
    closed_environment: bool | None = False
    hyper_params: dict[str, Any] | None = None  # Clarifai's training settings: kept and shown, not used
    model_type: str = CONCEPT  # or DETECTION: its versions learn boxes


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

    # -- an app's own models ---------------------------------------------------------------------
    def create(self, app_id: str, new: NewModel) -> ModelView:
        """Create an app's own concept (or detection) model with an untrained base version, all or
        nothing. Concepts the app does not have yet are created, as annotations create them; it
        predicts once a version trained (``POST /v2/models/{id}/versions``)."""
        model_id = _checked(new)
        try:
            with self.db.transaction() as s:
                _refuse_taken(s, app_id, model_id, new.name or model_id)
                ids = [c.id for c in new.concepts]
                ensure_concepts(s, app_id, ids, names={c.id: c.name for c in new.concepts if c.name})
                names = dict(s.execute(select(Concept.id, Concept.name)
                                       .where(Concept.app_id == app_id, Concept.id.in_(ids))).all())
                model = Model(app_id=app_id, id=model_id, name=new.name or model_id, model_type=new.model_type,
                              runtime=CREATED_RUNTIMES[new.model_type], output_info={
                                  "concepts": [{"id": cid, "name": names[cid]} for cid in ids],
                                  "output_config": {"concepts_mutually_exclusive": new.concepts_mutually_exclusive,
                                                    "closed_environment": new.closed_environment,
                                                    **({"hyper_params": new.hyper_params} if new.hyper_params
                                                       else {})}})
                s.add(model)
                s.flush()
                s.add(ModelVersion(id=new_id(), model_pk=model.pk, app_id=app_id, status_code=status.MODEL_UNTRAINED,
                                   params={"kind": "base"}))
        except IntegrityError:  # a concurrent request created the same model first
            raise _taken(model_id) from None
        self._views.clear()
        return self.get(app_id, model_id)

    def patch(self, app_id: str, action: str, change: NewModel) -> ModelView:
        """Change an app's own model: its name, output_config, and concepts (``merge`` adds,
        ``remove`` drops, ``overwrite`` replaces); a model created without concepts gets them here."""
        if action not in PATCH_ACTIONS:
            raise errors.InvalidRequest(f"action: must be one of {', '.join(PATCH_ACTIONS)}, got {action[:40]!r}")
        view = self.get(app_id, change.id or "")
        if view.model.app_id != app_id:
            raise errors.InvalidRequest(f"model.id: {view.model.id!r} is a built-in model; only the app's own "
                                        "models can be changed")
        for i, c in enumerate(change.concepts):
            check_concept_id(c.id, f"{CONCEPTS_FIELD}[{i}].id")
        check_concept_text(change.name, "model.name", NAME_MAX)
        with self.db.transaction() as s:
            model = s.get(Model, view.model.pk)
            assert model is not None
            info = dict(model.output_info or {})
            before = {c["id"]: c["name"] for c in info.get("concepts", [])}
            named = {c.id: c.name for c in change.concepts}
            if action == "overwrite":
                wanted = list(named)
            elif action == "remove":
                wanted = [cid for cid in before if cid not in named]
            else:
                wanted = list(before) + [cid for cid in named if cid not in before]
            if len(wanted) > MAX_MODEL_CONCEPTS:
                raise errors.InvalidRequest(f"{CONCEPTS_FIELD}: at most {MAX_MODEL_CONCEPTS} concepts, got {len(wanted)}")
            ensure_concepts(s, app_id, wanted, names={cid: n for cid, n in named.items() if n})
            names = dict(s.execute(select(Concept.id, Concept.name)
                                   .where(Concept.app_id == app_id, Concept.id.in_(wanted))).all())
            info["concepts"] = [{"id": cid, "name": names[cid]} for cid in wanted]
            config = dict(info.get("output_config") or {})
            for key, value in (("concepts_mutually_exclusive", change.concepts_mutually_exclusive),
                               ("closed_environment", change.closed_environment), ("hyper_params", change.hyper_params)):
                if value is not None:
                    config[key] = value
            info["output_config"] = config
            model.output_info = info
            if change.name and change.name != model.name:
                _refuse_name(s, app_id, model.pk, change.name)
                model.name = change.name
        self._views.clear()
        return self.get(app_id, view.model.id)

    def delete(self, app_id: str, refs: Sequence[str] | None) -> None:
        """Delete the app's own models (all of them when ``refs`` is None); a built-in named keeps
        its base version and loses the app's own versions of it, which otherwise stay. Every ref is
        looked up first, so an unknown one (404) deletes nothing.

        Nothing about a deleted model is erased: its row and versions move to an app id no app has
        (:data:`DELETED_APP_PREFIX`), so the feedback log keeps every event, still naming the model."""
        views = None if refs is None else [self.get(app_id, ref) for ref in refs]
        with self.db.transaction() as s:
            if views is None:
                own = list(s.scalars(select(Model).where(Model.app_id == app_id)))
                builtin: list[int] = []
            else:
                own = [m for m in (s.get(Model, v.model.pk) for v in views) if m is not None and m.app_id == app_id]
                builtin = [v.model.pk for v in views if v.model.app_id == SHARED]
            pks = [m.pk for m in own] + builtin
            s.execute(delete(ActiveVersion).where(ActiveVersion.app_id == app_id, ActiveVersion.model_pk.in_(pks)))
            for model in own:
                tombstone = DELETED_APP_PREFIX + new_id()
                s.execute(update(ModelVersion).where(ModelVersion.model_pk == model.pk).values(app_id=tombstone))
                model.output_info = {**(model.output_info or {}), "deleted_from_app": app_id,
                                     "deleted_at": utcnow().isoformat()}
                model.app_id = tombstone
            for pk in builtin:
                s.execute(update(ModelVersion).where(ModelVersion.model_pk == pk, ModelVersion.app_id == app_id)
                          .values(app_id=DELETED_APP_PREFIX + new_id()))
        self._views.clear()

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
            _refuse_unavailable(ref)
            builtin = ", ".join(spec.name for spec in BUILTIN)
            raise errors.ModelNotFound(f"model {ref!r} does not exist; GET /v2/models lists the ids and names this "
                                       f"app can use (built in: {builtin}, each also by its id)")
        model, version = min(rows, key=lambda r: (r[0].id != ref, r[0].app_id != app_id))
        return _view(model, version)

    def search(self, app_id: str, name: str | None, model_type: str | None, page: Page) -> builtins.list[ModelView]:
        views = self.list(app_id, Page(1, 10_000))
        if name:
            pattern = name.lower()
            views = [v for v in views if _matches(pattern, v.model.name.lower()) or v.model.id == name]
        if model_type:
            views = [v for v in views if model_type in (v.wire_type, v.model.model_type)]
        return views[page.offset:page.offset + page.per_page]

    def versions(self, app_id: str, model: Model, page: Page) -> builtins.list[ModelVersion]:
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

    def set_active(self, app_id: str, model: Model, version_id: str, *, by_hand: bool = False) -> None:
        """Promote (or roll back to) a version for one app; other apps are untouched. ``by_hand``:
        an operator chose it, which automatic promotion respects (see ``LearningService``)."""
        self.version(app_id, model, version_id)
        with self.db.transaction() as s:
            row = s.get(ActiveVersion, (app_id, model.pk))
            if row is None:
                s.add(ActiveVersion(app_id=app_id, model_pk=model.pk, version_id=version_id, by_hand=by_hand))
            else:
                row.version_id = version_id
                row.modified_at = utcnow()
                row.by_hand = by_hand
        self._views.clear()

    def activation(self, app_id: str, model: Model) -> ActiveVersion | None:
        """The app's choice of version for a model (None: the base version, never chosen)."""
        with self.db.session() as s:
            return s.get(ActiveVersion, (app_id, model.pk))

    def clear_active(self, app_id: str, model: Model) -> None:
        """Forget the app's promoted version: it predicts with the base version again."""
        with self.db.transaction() as s:
            s.execute(delete(ActiveVersion).where(ActiveVersion.app_id == app_id, ActiveVersion.model_pk == model.pk))
        self._views.clear()

    def concepts_of(self, view: ModelView) -> builtins.list[tuple[str, str]]:
        """(id, name) of every concept the app's version of a model can output."""
        params = view.version.params or {}
        learned = [(c["id"], c["name"]) for c in params.get("concepts", [])]
        base = self._base_concepts(view.model.runtime)
        if base:
            known = {cid for cid, _ in base}
            return base + [c for c in learned if c[0] not in known]
        if view.model.runtime == "face":
            return [("face", "face")]
        if view.model.runtime in (CUSTOM, CUSTOM_DETECTOR):
            return chosen_concepts(view.model)
        return learned

    def concept_matches(self, app_id: str, name: str) -> builtins.list[tuple[ModelView, str, str]]:
        """(model, id, name) of the built-in models' concepts whose name matches ``name`` (``*``
        wildcards, any case), each concept once; an app's own models output the app's concepts."""
        pattern, seen, out = name.lower(), set(), []
        for view in self.list(app_id, Page(1, 10_000)):
            if view.model.app_id != SHARED:
                continue
            for cid, cname in self.concepts_of(view):
                if cid not in seen and _matches(pattern, cname.lower()):
                    seen.add(cid)
                    out.append((view, cid, cname))
        return out

    def _base_concepts(self, runtime: str) -> builtins.list[tuple[str, str]]:
        """(id, name) of the concepts a built-in concept model's base version outputs."""
        vocab = self.runtime.vocabulary
        if runtime == "general":
            return [(c.id, c.name) for c in vocab.concepts]
        if runtime in DOMAINS:
            return [(vocab.concepts[j].id, vocab.concepts[j].name) for j in vocab.under(DOMAINS[runtime])]
        if runtime == "nsfw":
            return [(SFW, SFW), (NSFW, NSFW)]
        return []

    # -- predictors -----------------------------------------------------------------------------
    def predictor(self, model: Model, version: ModelVersion) -> Predictor:
        """The predictor of a version, built once and cached (versions are immutable)."""
        cached = self._predictors.get(version.id)
        if cached is not None:
            return cached
        if version.status_code != status.MODEL_TRAINED:
            state = status.DESCRIPTIONS.get(version.status_code, f"status {version.status_code}").lower()
            raise errors.ModelInvalid(f"model {model.id!r} version {version.id} cannot predict: {state}; train a "
                                      f"version with POST /v2/models/{model.id}/versions",
                                      description="Model is not trained")
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


def chosen_concepts(model: Model) -> list[tuple[str, str]]:
    """(id, name) of the concepts an app chose for its own model; none for a built-in model."""
    return [(c["id"], c["name"]) for c in (model.output_info or {}).get("concepts", [])]


def _checked(new: NewModel) -> str:
    """Refuse a malformed model before anything is written; returns its id."""
    if not new.id:
        raise errors.InvalidRequest("model.id: an id is required")
    if not is_valid_model_id(new.id):
        raise errors.InvalidRequest(f"model.id: {new.id[:80]!r} must be 1-64 printable characters, no '\\', "
                                    "not only spaces")
    check_concept_text(new.name, "model.name", NAME_MAX)
    if len(new.concepts) > MAX_MODEL_CONCEPTS:  # none is fine: they can be added later, before training
        raise errors.InvalidRequest(f"{CONCEPTS_FIELD}: at most {MAX_MODEL_CONCEPTS} concepts, "
                                    f"got {len(new.concepts)}")
    seen: set[str] = set()
    for i, c in enumerate(new.concepts):
        check_concept_id(c.id, f"{CONCEPTS_FIELD}[{i}].id")
        check_concept_text(c.name, f"{CONCEPTS_FIELD}[{i}].name", NAME_MAX)
        if c.id in seen:
            raise errors.InvalidRequest(f"{CONCEPTS_FIELD}[{i}].id: {c.id!r} appears twice")
        seen.add(c.id)
    return new.id


def _refuse_taken(s: Session, app_id: str, model_id: str, name: str) -> None:
    """An id or name the app already reaches a model by (its own or a built-in, by id or name) would
    shadow it: a custom model named 'general-v1.3' took that name over, predict and training included."""
    refs = {model_id, name}
    for ref in sorted(refs):  # PostgreSQL: creates checking one id or name take turns (SQLite: one writer)
        serialize(s, f"{app_id}\0model\0{ref}")
    reached = select(Model.id, Model.name).where(or_(Model.app_id == SHARED, Model.app_id == app_id),
                                                 or_(Model.id.in_(refs), Model.name.in_(refs)))
    taken = s.execute(reached.limit(1)).first()
    if taken is None:
        return
    if model_id in (taken.id, taken.name):
        raise _taken(model_id)
    raise errors.InvalidRequest(f"model.name: {name!r} already names model {taken.id!r} in this app, which is "
                                "reached by that name; choose another name", description="Model already exists")


def _refuse_name(s: Session, app_id: str, pk: int, name: str) -> None:
    """A new name must not be how the app reaches another model (by its id or name)."""
    serialize(s, f"{app_id}\0model\0{name}")
    other = s.execute(select(Model.id).where(or_(Model.app_id == SHARED, Model.app_id == app_id), Model.pk != pk,
                                             or_(Model.id == name, Model.name == name)).limit(1)).first()
    if other is not None:
        raise errors.InvalidRequest(f"model.name: {name!r} already names model {other.id!r} in this app; choose "
                                    "another name", description="Model already exists")


def _taken(model_id: str) -> errors.ApiError:
    return errors.InvalidRequest(f"model.id: a model {model_id!r} already exists in this app",
                                 description="Model already exists")


def _refuse_unavailable(ref: str) -> None:
    """A Clarifai public model with no offline weights exists, but not here: say so, not 'does not exist'."""
    known = next((m for m in UNAVAILABLE if ref in (m.id, m.name)), None)
    if known is not None:
        raise errors.ModelUnavailable(f"model {ref!r} is {known.what}: no offline weights exist for it, so this "
                                      "server does not serve it (docs/public-models.md lists the public models it "
                                      "serves)")


def _view(model: Model, version: ModelVersion | None) -> ModelView:
    if version is None:
        raise errors.ModelNotFound(f"model {model.id!r} has no trained version yet")
    return ModelView(model, version)


def _matches(pattern: str, name: str) -> bool:
    """Case-insensitive name match with ``*`` wildcards (a plain name matches exactly)."""
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern.replace("[", "[[]"))
