"""Inputs: images with annotations and metadata, stored once and never half-written."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, cast

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionloop import errors, status
from visionloop.ids import is_valid_client_id, new_id
from visionloop.inference.predictors import MIN_SIDE
from visionloop.services.apps import Caller
from visionloop.services.blob_gc import BlobCollector
from visionloop.services.concepts import check_concept_id, ensure_concepts
from visionloop.services.embedding_gc import EmbeddingCollector
from visionloop.services.geo import GeoPoint
from visionloop.services.image_source import ImageLoader, ImageSource
from visionloop.services.images import CheckedImage, keep, still_kept
from visionloop.services.indexing import Analysis, InputAnalyzer
from visionloop.services.input_regions import RegionAnnotation, regions_of, write_regions
from visionloop.services.paging import Page
from visionloop.services.predict import still_stored, store_embeddings
from visionloop.services.usage import count_usage
from visionloop.store.app_indexes import bump_generation
from visionloop.store.blobs import BlobStore
from visionloop.store.db import Database
from visionloop.store.tables import (
    Input,
    InputConcept,
    InputConceptScore,
    InputRegion,
    input_at_url,
    input_has_image,
    utcnow,
)
from visionloop.store.vector_store import VectorStore


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
    regions: tuple[RegionAnnotation, ...] | None = None  # None: not in the body (overwrite keeps them)


@dataclasses.dataclass
class StoredInput:
    """An input with its annotations, as the API shows it."""

    row: Input
    concepts: list[InputConcept]
    regions: list[InputRegion] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ItemResult:
    """One item of a batch: the stored input, the error that kept it out, or both: an input stored
    although its URL could not be fetched or decoded (status 30002, as Clarifai kept such inputs)."""

    index: int
    input_id: str | None
    stored: StoredInput | None = None
    error: errors.ApiError | None = None


PatchAction = Literal["merge", "overwrite", "remove"]


class InputService:
    def __init__(self, db: Database, blobs: BlobStore, loader: ImageLoader, analyzer: InputAnalyzer,
                 indexes: VectorStore, *, max_batch: int, embeddings: EmbeddingCollector) -> None:
        self.db = db
        self.blobs = blobs
        self.collector = BlobCollector(db, blobs)  # deleting inputs deletes the images nothing else names
        self.embeddings = embeddings  # ... and their embeddings nothing else needs
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
        the inputs added are counted as usage in the same transaction.

        An item whose URL could not be fetched or decoded is stored all the same, without an image
        and with the cause (:func:`_download_failure`); an invalid item is refused and stores nothing.
        """
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
        images, causes = self._load_images([(r, it) for r, it in zip(results, items) if r.error is None])
        order = sorted(images)
        analyses = dict(zip(order, self.analyzer.analyze(app_id, [images[i] for i in order])))
        with self.db.transaction() as s:
            for res, item in zip(results, items):
                if res.index in images:
                    self._write_one(s, app_id, res, item, (images[res.index], analyses[res.index]))
                elif res.index in causes:
                    self._write_one(s, app_id, res, item, causes[res.index])
            added = [r for r in results if r.stored is not None and r.index in images]
            self.indexes.write(s, app_id, [(r.stored.row.id, analyses[r.index].embedding)
                                           for r in added if r.stored])
            generation = bump_generation(s, app_id) if added else 0
            count_usage(s, caller, "inputs", sum(r.stored is not None for r in results))
        still_kept(self.blobs, [images[r.index] for r in added])
        still_stored(self.db, {images[r.index].digest: analyses[r.index].features for r in added})
        if added:
            self.indexes.add(app_id, [(r.stored.row.id, images[r.index].digest) for r in added if r.stored],
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

    def _load_images(self, pending: list[tuple[ItemResult, NewInput]]) -> tuple[dict[int, CheckedImage],
                                                                               dict[int, str]]:
        """The images that loaded, and the causes of the URLs that failed to (items refused
        outright get their error)."""
        def load(pair: tuple[ItemResult, NewInput]) -> tuple[int, CheckedImage | errors.ApiError]:
            res, item = pair
            try:
                assert item.image is not None
                return res.index, self.loader.load(item.image, MIN_SIDE["general"])  # analysed by general
            except errors.ApiError as exc:
                return res.index, exc

        out: dict[int, CheckedImage] = {}
        causes: dict[int, str] = {}
        by_index = {r.index: (r, it) for r, it in pending}
        for index, value in self._pool.map(load, pending):
            res, item = by_index[index]
            if not isinstance(value, errors.ApiError):
                out[index] = value
            elif (cause := _download_failure(item, value)) is None:
                res.error = value
            else:
                causes[index] = cause
                res.error = errors.InputDownloadFailed.because(cause, f"inputs[{index}].data.image.url")
        return out, causes

    def _write_one(self, s: Session, app_id: str, res: ItemResult, item: NewInput,
                   loaded: tuple[CheckedImage, Analysis] | str) -> None:
        """Store one item: with its image and analysis, or without, given why its download failed."""
        input_id = item.id or new_id()
        url = item.image.url if item.image else None
        image, analysis = loaded if isinstance(loaded, tuple) else (None, None)
        cause = loaded if isinstance(loaded, str) else None
        try:
            with s.begin_nested():
                existing = s.get(Input, (app_id, input_id))
                if existing is not None and existing.digest is not None:
                    raise errors.InputDuplicate(f"inputs[{res.index}].id: input {input_id!r} already exists")
                if existing is not None:  # one whose download failed, sent again: replaced whole
                    _delete_rows(s, app_id, [input_id])
                if url and not item.allow_duplicate_url and s.scalar(
                        select(Input.id).where(Input.app_id == app_id, input_at_url(url), input_has_image()).limit(1)):
                    raise errors.InputDuplicate(f"inputs[{res.index}].data.image.url: an input with this url "
                                                "already exists (set allow_duplicate_url to add it again)")
                if image is not None:
                    keep(self.blobs, image, f"inputs[{res.index}].data.image")
                row = Input(app_id=app_id, id=input_id, url=url, meta=item.metadata or {},
                            digest=image.digest if image else None, width=image.width if image else None,
                            height=image.height if image else None,
                            status_code=status.INPUT_SUCCESS if image else status.INPUT_FAILED,
                            status_details=cause,
                            geo_latitude=item.geo.latitude if item.geo else None,
                            geo_longitude=item.geo.longitude if item.geo else None)
                s.add(row)
                s.flush()
                ensure_concepts(s, app_id, [a.concept_id for a in item.concepts])
                anns = _annotations(app_id, input_id, item.concepts)
                s.add_all(anns)
                write_regions(s, app_id, input_id, item.regions or (), "merge")
                if image is not None and analysis is not None:
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
        res.stored = StoredInput(row, anns, regions_of(s, app_id, [input_id]).get(input_id, []))

    # -- read -----------------------------------------------------------------------------------
    def get(self, app_id: str, input_id: str) -> StoredInput:
        with self.db.session() as s:
            row = s.get(Input, (app_id, input_id)) if is_valid_client_id(input_id) else None
            if row is None:
                raise errors.InputNotFound(f"input {input_id!r} does not exist in this app")
            return self._stored(s, app_id, [row])[0]

    def list(self, app_id: str, page: Page, *, images_only: bool = False) -> list[StoredInput]:
        """A page of the app's inputs, newest first; ``images_only``: not those whose download failed."""
        with self.db.session() as s:
            rows = list(s.scalars(select(Input).where(Input.app_id == app_id,
                                                      *([input_has_image()] if images_only else []))
                                  .order_by(Input.created_at.desc(), Input.id).offset(page.offset)
                                  .limit(page.per_page)))
            return self._stored(s, app_id, rows)

    def get_many(self, app_id: str, input_ids: Sequence[str]) -> dict[str, StoredInput]:
        """Inputs with their image by id (others are simply absent), for search hits."""
        with self.db.session() as s:
            rows = list(s.scalars(select(Input).where(Input.app_id == app_id, Input.id.in_(list(input_ids)),
                                                      input_has_image())))
            return {stored.row.id: stored for stored in self._stored(s, app_id, rows)}

    def counts(self, app_id: str) -> dict[int, int]:
        with self.db.session() as s:
            q = select(Input.status_code, func.count()).where(Input.app_id == app_id).group_by(Input.status_code)
            return {code: n for code, n in s.execute(q)}

    @classmethod
    def _stored(cls, s: Session, app_id: str, rows: builtins.list[Input]) -> builtins.list[StoredInput]:
        """The inputs with their annotations: concepts and regions."""
        ids = [r.id for r in rows]
        anns, regions = cls._concepts_of(s, app_id, ids), regions_of(s, app_id, ids)
        return [StoredInput(r, anns.get(r.id, []), regions.get(r.id, [])) for r in rows]

    @staticmethod
    def _concepts_of(s: Session, app_id: str, input_ids: builtins.list[str]) -> dict[str, builtins.list[InputConcept]]:
        out: dict[str, list[InputConcept]] = {}
        if not input_ids:
            return out
        q = (select(InputConcept).where(InputConcept.app_id == app_id, InputConcept.input_id.in_(input_ids))
             .order_by(InputConcept.concept_id))
        for ann in s.scalars(q):
            out.setdefault(ann.input_id, []).append(ann)
        return out

    # -- update ---------------------------------------------------------------------------------
    def patch(self, app_id: str, action: PatchAction, items: Sequence[NewInput]) -> builtins.list[StoredInput]:
        """Merge, overwrite or remove concepts, regions, metadata and location; all items or none."""
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
                if item.regions is not None:
                    write_regions(s, app_id, row.id, item.regions, action)
                out.append(row)
            return self._stored(s, app_id, out)

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
            digests = cast("set[str]", set(s.scalars(select(Input.digest).where(  # with an image: a digest
                Input.app_id == app_id, Input.id.in_(valid), input_has_image()))))
            _delete_rows(s, app_id, input_ids)
            generation = bump_generation(s, app_id)
        self.indexes.remove(app_id, list(input_ids), generation)
        self.collector.collect(digests)
        self.embeddings.collect(digests)

    def delete_all(self, app_id: str) -> int:
        with self.db.session() as s:
            ids = list(s.scalars(select(Input.id).where(Input.app_id == app_id)))
        if ids:
            self.delete(app_id, ids)
        return len(ids)


def _download_failure(item: NewInput, exc: errors.ApiError) -> str | None:
    """Why ``item``'s image URL could not be fetched or decoded (an HTTP status, the size limit, not
    an image...), to store with it; None when the item is refused outright instead: base64 (the
    request itself holds the bad bytes) or a URL refused before any download (malformed, a non-public
    address, a host the operator did not allow)."""
    if item.image is None or item.image.url is None or isinstance(exc, errors.InputUrlRefused):
        return None
    return exc.details.removeprefix(f"{item.image.field}.url: ")


def _delete_rows(s: Session, app_id: str, input_ids: Sequence[str]) -> None:
    for table in (InputConcept, InputConceptScore, InputRegion):
        s.execute(delete(table).where(table.app_id == app_id, table.input_id.in_(list(input_ids))))
    s.execute(delete(Input).where(Input.app_id == app_id, Input.id.in_(list(input_ids))))


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
