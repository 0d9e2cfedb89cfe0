"""Inputs: images with annotations and metadata, stored once and never half-written."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionloop import errors, status
from visionloop.ids import is_valid_client_id, new_id
from visionloop.models.predictors import MIN_SIDE
from visionloop.services.apps import Caller
from visionloop.services.concepts import check_concept_id, ensure_concepts
from visionloop.services.geo import GeoPoint
from visionloop.services.image_source import ImageLoader, ImageSource
from visionloop.services.images import CheckedImage, keep
from visionloop.services.indexing import Analysis, InputAnalyzer
from visionloop.services.paging import Page
from visionloop.services.usage import count_usage
from visionloop.store.blobs import BlobStore
from visionloop.store.db import Database
from visionloop.services.predict import store_embeddings
from visionloop.store.app_indexes import bump_generation
from visionloop.store.vector_store import VectorStore
from visionloop.store.tables import Input, InputConcept, InputConceptScore, input_at_url, utcnow


@dataclasses.dataclass(frozen=True)
class Annotation:
    concept_id: str
    value: float


@dataclasses.dataclass(frozen=True)
class NewInput:
    id: str | None
    image: ImageSource | None
    concepts: tuple[Annotation, ...] = ()
    metadata: dict[str, Any] | None = None
    geo: GeoPoint | None = None
    allow_duplicate_url: bool = False


@dataclasses.dataclass
class StoredInput:
    """An input with its annotations, as the API shows it."""

    row: Input
    concepts: list[InputConcept]


@dataclasses.dataclass
class ItemResult:
    """One item of a batch: the stored input, or the error that kept it out."""

    index: int
    input_id: str | None
    stored: StoredInput | None = None
    error: errors.ApiError | None = None


PatchAction = Literal["merge", "overwrite", "remove"]


class InputService:
    def __init__(self, db: Database, blobs: BlobStore, loader: ImageLoader, analyzer: InputAnalyzer,
                 indexes: VectorStore, *, max_batch: int) -> None:
        self.db = db
        self.blobs = blobs
        self.loader = loader
        self.analyzer = analyzer
        self.indexes = indexes
        self.max_batch = max_batch
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="image-load")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- create ---------------------------------------------------------------------------------
    def add(self, caller: Caller, items: Sequence[NewInput]) -> list[ItemResult]:
        """Add a batch; every item is written whole or not at all, each with its own status, and
        the inputs added are counted as usage in the same transaction."""
        app_id = caller.app_id
        if not items:
            raise errors.InvalidRequest("inputs: at least one input is required")
        if len(items) > self.max_batch:
            raise errors.InvalidRequest(f"inputs: at most {self.max_batch} inputs per request, got {len(items)}")
        results = [ItemResult(i, it.id) for i, it in enumerate(items)]
        seen: set[str] = set()
        for res, item in zip(results, items):
            try:
                self._validate(res.index, item, seen)
            except errors.ApiError as exc:
                res.error = exc
        images = self._load_images([(r, it) for r, it in zip(results, items) if r.error is None])
        order = sorted(images)
        analyses = dict(zip(order, self.analyzer.analyze(app_id, [images[i] for i in order])))
        with self.db.transaction() as s:
            for res, item in zip(results, items):
                if res.error is None:
                    self._write_one(s, app_id, res, item, images[res.index], analyses[res.index])
            added = [r for r in results if r.stored is not None]
            self.indexes.write(s, app_id, [(r.stored.row.id, analyses[r.index].embedding)
                                           for r in added if r.stored])
            generation = bump_generation(s, app_id) if added else 0
            count_usage(s, caller, "inputs", len(added))
        if added:
            self.indexes.add(app_id, [(r.stored.row.id, r.stored.row.digest) for r in added if r.stored],
                             np.stack([analyses[r.index].embedding for r in added]), generation)
        return results

    def _validate(self, index: int, item: NewInput, seen: set[str]) -> None:
        field = f"inputs[{index}]"
        if item.id is not None:
            if not is_valid_client_id(item.id):
                raise errors.InputInvalid(f"{field}.id: {item.id!r} must be 1-64 letters, digits, '_', '.', ':' "
                                          "or '-' starting with a letter or digit")
            if item.id in seen:
                raise errors.InputDuplicate(f"{field}.id: {item.id!r} appears twice in the request")
            seen.add(item.id)
        if item.image is None:
            raise errors.InputInvalid(f"{field}.data.image: an image (base64 or url) is required")
        check_annotations(item.concepts, f"{field}.data.concepts")

    def _load_images(self, pending: list[tuple[ItemResult, NewInput]]) -> dict[int, CheckedImage]:
        def load(pair: tuple[ItemResult, NewInput]) -> tuple[int, CheckedImage | errors.ApiError]:
            res, item = pair
            try:
                assert item.image is not None
                return res.index, self.loader.load(item.image, MIN_SIDE["general"])  # analysed by general
            except errors.ApiError as exc:
                return res.index, exc

        out: dict[int, CheckedImage] = {}
        by_index = {r.index: r for r, _ in pending}
        for index, value in self._pool.map(load, pending):
            if isinstance(value, errors.ApiError):
                by_index[index].error = value
            else:
                out[index] = value
        return out

    def _write_one(self, s: Session, app_id: str, res: ItemResult, item: NewInput, image: CheckedImage,
                   analysis: Analysis) -> None:
        input_id = item.id or new_id()
        url = item.image.url if item.image else None
        try:
            with s.begin_nested():
                if s.get(Input, (app_id, input_id)) is not None:
                    raise errors.InputDuplicate(f"inputs[{res.index}].id: input {input_id!r} already exists")
                if url and not item.allow_duplicate_url and s.scalar(
                        select(Input.id).where(Input.app_id == app_id, input_at_url(url)).limit(1)):
                    raise errors.InputDuplicate(f"inputs[{res.index}].data.image.url: an input with this url "
                                                "already exists (set allow_duplicate_url to add it again)")
                keep(self.blobs, image, f"inputs[{res.index}].data.image")
                row = Input(app_id=app_id, id=input_id, digest=image.digest, url=url, width=image.width,
                            height=image.height, meta=item.metadata or {}, status_code=status.INPUT_SUCCESS,
                            geo_latitude=item.geo.latitude if item.geo else None,
                            geo_longitude=item.geo.longitude if item.geo else None)
                s.add(row)
                s.flush()
                ensure_concepts(s, app_id, [a.concept_id for a in item.concepts])
                anns = _annotations(app_id, input_id, item.concepts)
                s.add_all(anns)
                s.add_all(InputConceptScore(app_id=app_id, input_id=input_id, concept_id=cid, value=value)
                          for cid, value in analysis.concepts)
                store_embeddings(s, {image.digest: analysis.features})
                s.flush()
        except errors.ApiError as exc:
            res.error = exc
            return
        except IntegrityError:
            res.error = errors.InputDuplicate(f"inputs[{res.index}].id: input {input_id!r} already exists")
            return
        res.input_id = input_id
        res.stored = StoredInput(row, anns)

    # -- read -----------------------------------------------------------------------------------
    def get(self, app_id: str, input_id: str) -> StoredInput:
        with self.db.session() as s:
            row = s.get(Input, (app_id, input_id)) if is_valid_client_id(input_id) else None
            if row is None:
                raise errors.InputNotFound(f"input {input_id!r} does not exist in this app")
            return StoredInput(row, self._concepts_of(s, app_id, [input_id]).get(input_id, []))

    def list(self, app_id: str, page: Page) -> list[StoredInput]:
        with self.db.session() as s:
            rows = list(s.scalars(select(Input).where(Input.app_id == app_id)
                                  .order_by(Input.created_at.desc(), Input.id).offset(page.offset)
                                  .limit(page.per_page)))
            anns = self._concepts_of(s, app_id, [r.id for r in rows])
            return [StoredInput(r, anns.get(r.id, [])) for r in rows]

    def get_many(self, app_id: str, input_ids: Sequence[str]) -> dict[str, StoredInput]:
        """Inputs by id (missing ids are simply absent), for search hits."""
        with self.db.session() as s:
            rows = list(s.scalars(select(Input).where(Input.app_id == app_id, Input.id.in_(list(input_ids)))))
            anns = self._concepts_of(s, app_id, [r.id for r in rows])
            return {r.id: StoredInput(r, anns.get(r.id, [])) for r in rows}

    def counts(self, app_id: str) -> dict[int, int]:
        with self.db.session() as s:
            q = select(Input.status_code, func.count()).where(Input.app_id == app_id).group_by(Input.status_code)
            return {code: n for code, n in s.execute(q)}

    @staticmethod
    def _concepts_of(s: Session, app_id: str, input_ids: list[str]) -> dict[str, list[InputConcept]]:
        out: dict[str, list[InputConcept]] = {}
        if not input_ids:
            return out
        q = (select(InputConcept).where(InputConcept.app_id == app_id, InputConcept.input_id.in_(input_ids))
             .order_by(InputConcept.concept_id))
        for ann in s.scalars(q):
            out.setdefault(ann.input_id, []).append(ann)
        return out

    # -- update ---------------------------------------------------------------------------------
    def patch(self, app_id: str, action: PatchAction, items: Sequence[NewInput]) -> list[StoredInput]:
        """Merge, overwrite or remove concepts, metadata and location; all items or none."""
        if not items:
            raise errors.InvalidRequest("inputs: at least one input is required")
        with self.db.transaction() as s:
            out = []
            for i, item in enumerate(items):
                if not item.id:
                    raise errors.InvalidRequest(f"inputs[{i}].id: the id of the input to change is required")
                # FOR UPDATE (PostgreSQL): concurrent patches of one input merge in turn, none is lost
                row = s.get(Input, (app_id, item.id), with_for_update=True) if is_valid_client_id(item.id) else None
                if row is None:
                    raise errors.InputNotFound(f"inputs[{i}].id: input {item.id!r} does not exist in this app")
                check_annotations(item.concepts, f"inputs[{i}].data.concepts")
                self._patch_one(s, app_id, row, action, item)
                out.append(row)
            anns = self._concepts_of(s, app_id, [r.id for r in out])
            return [StoredInput(r, anns.get(r.id, [])) for r in out]

    @staticmethod
    def _patch_one(s: Session, app_id: str, row: Input, action: PatchAction, item: NewInput) -> None:
        ids = [a.concept_id for a in item.concepts]
        where = (InputConcept.app_id == app_id, InputConcept.input_id == row.id)
        if action == "remove":
            if ids:
                s.execute(delete(InputConcept).where(*where, InputConcept.concept_id.in_(ids)))
            if item.metadata:
                row.meta = _remove(row.meta or {}, item.metadata)
            if item.geo is not None:
                row.geo_latitude = row.geo_longitude = None
        else:
            if action == "overwrite":
                s.execute(delete(InputConcept).where(*where))
            elif ids:
                s.execute(delete(InputConcept).where(*where, InputConcept.concept_id.in_(ids)))
            ensure_concepts(s, app_id, ids)
            s.add_all(_annotations(app_id, row.id, item.concepts))
            if item.metadata is not None:
                row.meta = dict(item.metadata) if action == "overwrite" else _merge(row.meta or {}, item.metadata)
            if item.geo is not None:
                row.geo_latitude, row.geo_longitude = item.geo.latitude, item.geo.longitude
        row.modified_at = utcnow()
        s.flush()

    # -- delete ---------------------------------------------------------------------------------
    def delete(self, app_id: str, input_ids: Sequence[str]) -> None:
        """Delete inputs; any unknown id refuses the whole request so nothing is half-deleted."""
        if not input_ids:
            raise errors.InvalidRequest("ids: at least one input id is required")
        valid = [i for i in input_ids if is_valid_client_id(i)]  # others cannot exist (nor be looked up on PG)
        with self.db.transaction() as s:
            found = set(s.scalars(select(Input.id).where(Input.app_id == app_id, Input.id.in_(valid))))
            missing = [i for i in input_ids if i not in found]
            if missing:
                raise errors.InputNotFound(f"inputs do not exist in this app: {', '.join(missing[:10])}")
            for table in (InputConcept, InputConceptScore):
                s.execute(delete(table).where(table.app_id == app_id, table.input_id.in_(list(input_ids))))
            s.execute(delete(Input).where(Input.app_id == app_id, Input.id.in_(list(input_ids))))
            generation = bump_generation(s, app_id)
        self.indexes.remove(app_id, list(input_ids), generation)

    def delete_all(self, app_id: str) -> int:
        with self.db.session() as s:
            ids = list(s.scalars(select(Input.id).where(Input.app_id == app_id)))
        if ids:
            self.delete(app_id, ids)
        return len(ids)


def check_annotations(concepts: Sequence[Annotation], field: str) -> None:
    seen: set[str] = set()
    for j, ann in enumerate(concepts):
        check_concept_id(ann.concept_id, f"{field}[{j}].id")
        if ann.concept_id in seen:
            raise errors.InputInvalid(f"{field}[{j}].id: concept {ann.concept_id!r} is given twice")
        seen.add(ann.concept_id)


def _annotations(app_id: str, input_id: str, concepts: Sequence[Annotation]) -> list[InputConcept]:
    return [InputConcept(app_id=app_id, input_id=input_id, concept_id=a.concept_id, value=a.value) for a in concepts]


def _remove(old: dict[str, Any], named: dict[str, Any]) -> dict[str, Any]:
    """The mirror of :func:`_merge`: a key named with a non-empty object loses only what that object
    names (``{"o": {"x": {"z": 0}}}`` removes o.x.z, keeping o.x.y); any other value removes the key."""
    out = dict(old)
    for k, v in named.items():
        if k in out:
            if isinstance(v, dict) and v and isinstance(out[k], dict):
                out[k] = _remove(out[k], v)
            else:
                del out[k]
    return out


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Recursive JSON merge: objects merge key by key, anything else replaces."""
    out = dict(old)
    for k, v in new.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
