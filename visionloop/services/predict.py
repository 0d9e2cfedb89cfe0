"""Predict: run a model version on up to 128 images and remember every output.

Each output is stored with its model version, the image (stored input id or the transient
image's digest, its bytes kept in the blob store), the result, the key and the time: feedback
refers to outputs by id, and evaluation compares what a version said with what users corrected.
Embeddings of predicted images are stored once per image digest so training never recomputes them;
pruning outputs deletes those nothing else needs (:mod:`visionloop.services.embedding_gc`).
Concurrent predicts (those that shared a backbone forward finish together) write their outputs in
one transaction (:mod:`visionloop.store.group_commit`): one commit, one disk flush, one turn of
SQLite's write lock for them all, each request answered only once its outputs are committed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from visionloop import errors
from visionloop.ids import is_valid_client_id, new_id
from visionloop.inference.catalog import CONCEPT
from visionloop.inference.predictions import ConceptScore, Prediction, Region
from visionloop.inference.predictors import MIN_SIDE
from visionloop.metrics import METRICS
from visionloop.services.apps import Caller
from visionloop.services.blob_gc import BlobCollector
from visionloop.services.embedding_gc import EmbeddingCollector
from visionloop.services.image_source import ImageLoader, ImageSource, without_image
from visionloop.services.images import CheckedImage, keep, open_rgb, still_kept
from visionloop.services.models import ModelService, ModelView
from visionloop.services.usage import count_usage
from visionloop.store.blobs import BlobMissing, BlobStore
from visionloop.store.db import Database, insert_missing
from visionloop.store.group_commit import GroupCommit
from visionloop.store.prepared import PreparedIn, slots
from visionloop.store.tables import Embedding, FeedbackEvent, Input, Model, ModelVersion, Output, utcnow

_ADD_OUTPUT = insert(Output)  # built once: every predict runs it
# compiled once (visionloop/store/prepared.py): every predict's group commit runs it after committing
_STORED = PreparedIn(lambda n: select(Embedding.digest).where(Embedding.space == bindparam("space"),
                                                              Embedding.digest.in_(slots("digest", n))))

EMBEDDING_SPACE = "mobilenet_v2/features"  # raw pooled features: embeddings and class scores derive from them
STORED_CONCEPTS = 200  # an output keeps the top concepts: enough for evaluation, bounded in size


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    min_value: float = 0.0
    max_concepts: int = 20
    select_concepts: tuple[str, ...] = ()  # ids or names


@dataclasses.dataclass(frozen=True)
class PredictInput:
    """An image to predict on: a source, or only the id of a stored input."""

    id: str | None
    source: ImageSource | None


@dataclasses.dataclass(frozen=True)
class _OutputWrite:
    """What one predict request stores: its output rows, its images' features, its usage count."""

    caller: Caller
    rows: list[dict[str, Any]]
    features: dict[str, np.ndarray]


@dataclasses.dataclass
class PredictItem:
    index: int
    input_id: str
    source: ImageSource | None
    output_id: str | None = None
    created_at: dt.datetime | None = None
    prediction: Prediction | None = None
    error: errors.ApiError | None = None


def apply_output_config(pred: Prediction, config: OutputConfig) -> list[ConceptScore]:
    """Clarifai's output_config: selected concepts win; else top max_concepts at or above min_value."""
    if config.select_concepts:
        found = [pred.concept(ref) for ref in config.select_concepts]
        unique = {c.id: c for c in found if c is not None}
        return sorted(unique.values(), key=lambda c: -c.value)
    return [c for c in pred.concepts if c.value >= config.min_value][:config.max_concepts]


def embedding_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def features_from_bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")


def embedding_from_bytes(data: bytes) -> np.ndarray:
    """The unit-norm embedding of stored features."""
    v = features_from_bytes(data)
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


class PredictService:
    def __init__(self, db: Database, blobs: BlobStore, loader: ImageLoader, models: ModelService, *,
                 max_batch: int, embeddings: EmbeddingCollector) -> None:
        self.db = db
        self.blobs = blobs
        self.collector = BlobCollector(db, blobs)  # pruning outputs deletes the images nothing else names
        self.embeddings = embeddings  # ... and their embeddings nothing else needs
        self.loader = loader
        self.models = models
        self.max_batch = max_batch
        self._commits: GroupCommit[_OutputWrite, int] = GroupCommit(self._write)

    def resolve(self, app_id: str, model_ref: str, version_id: str | None) -> tuple[ModelView, ModelVersion]:
        view = self.models.get(app_id, model_ref)
        version = self.models.version(app_id, view.model, version_id) if version_id else view.version
        return view, version

    def predict(self, caller: Caller, model_ref: str, version_id: str | None, inputs: Sequence[PredictInput],
                config: OutputConfig) -> tuple[ModelView, ModelVersion, list[PredictItem]]:
        """Predict and remember the outputs; the images predicted on are counted as usage with them."""
        if not inputs:
            raise errors.InvalidRequest("inputs: at least one input is required")
        if len(inputs) > self.max_batch:
            raise errors.InvalidRequest(f"inputs: at most {self.max_batch} inputs per request, got {len(inputs)}")
        view, version = self.resolve(caller.app_id, model_ref, version_id)
        self._check_config(view.model, config)
        predictor = self.models.predictor(view.model, version)  # refuses an untrained version before any fetch
        items = [PredictItem(i, inp.id or new_id(), inp.source) for i, inp in enumerate(inputs)]
        images = self._load(caller.app_id, items, inputs, MIN_SIDE.get(view.model.runtime))
        ready = [it for it in items if it.error is None]
        if ready:
            pils = [open_rgb(images[it.index]) for it in ready]
            for it, pred in zip(ready, predictor.predict(pils)):
                it.prediction = pred
            self._remember(caller, view.model, version, ready, images)
            METRICS.predicted(view.model, len(ready))
        return view, version, items

    @staticmethod
    def _check_config(model: Model, config: OutputConfig) -> None:
        if not 0.0 <= config.min_value <= 1.0:
            raise errors.ModelInvalid(f"output_config.min_value: must be within [0, 1], got {config.min_value}")
        if not 0 <= config.max_concepts <= 1000:
            raise errors.ModelInvalid(f"output_config.max_concepts: must be within [0, 1000], got "
                                      f"{config.max_concepts}")
        if config.select_concepts and model.model_type != CONCEPT:
            raise errors.ModelInvalid("output_config.select_concepts: only concept models have concepts to select")

    def _load(self, app_id: str, items: list[PredictItem], inputs: Sequence[PredictInput],
              min_side: int | None) -> dict[int, CheckedImage]:
        out: dict[int, CheckedImage] = {}
        stored_ids = [inp.id for inp in inputs if inp.source is None and inp.id and is_valid_client_id(inp.id)]
        stored: dict[str, Input] = {}
        if stored_ids:
            with self.db.session() as s:
                stored = {r.id: r for r in s.scalars(select(Input).where(Input.app_id == app_id,
                                                                         Input.id.in_(stored_ids)))}
        for it, inp in zip(items, inputs):
            try:
                if inp.id is not None and not is_valid_client_id(inp.id):  # outputs keep it in a VARCHAR(64)
                    raise errors.InputInvalid(f"inputs[{it.index}].id: {inp.id[:80]!r} must be 1-64 letters, digits, "
                                              "'_', '.', ':' or '-' starting with a letter or digit")
                if inp.source is not None:
                    out[it.index] = self.loader.load(inp.source, min_side)
                elif inp.id:
                    row = stored.get(inp.id)
                    if row is None:
                        raise errors.InputNotFound(f"inputs[{it.index}].id: input {inp.id!r} does not exist "
                                                   "in this app (send data.image to predict on a new image)")
                    if row.digest is None or row.width is None or row.height is None:
                        raise without_image(f"inputs[{it.index}].id", row.id, row.status_details)
                    try:
                        data = self.blobs.get(row.digest)
                    except BlobMissing as exc:
                        raise errors.InputImageMissing(f"inputs[{it.index}].id: the image of input {inp.id!r} is "
                                                       f"not in this server's blob store ({exc})") from exc
                    out[it.index] = CheckedImage(data=data, digest=row.digest, width=row.width, height=row.height,
                                                 format="stored")
                else:
                    raise errors.InputInvalid(f"inputs[{it.index}].data.image: an image (base64 or url) or a "
                                              "stored input id is required")
            except errors.ApiError as exc:
                it.error = exc
        return out

    def _remember(self, caller: Caller, model: Model, version: ModelVersion, items: list[PredictItem],
                  images: dict[int, CheckedImage]) -> None:
        now = utcnow()
        rows = []
        for it in items:
            image = images[it.index]
            keep(self.blobs, image, f"inputs[{it.index}].data.image")  # durable before the output naming it
            assert it.prediction is not None
            it.output_id, it.created_at = new_id(), now
            rows.append({"id": it.output_id, "app_id": caller.app_id, "model_pk": model.pk, "version_id": version.id,
                         "input_id": it.input_id, "digest": image.digest,
                         "image_url": it.source.url if it.source else None,
                         "result": result_json(it.prediction), "key_id": caller.key_id, "created_at": now})
        self._commits.submit(_OutputWrite(caller, rows, {
            images[it.index].digest: it.prediction.features for it in items
            if it.prediction is not None and it.prediction.features is not None}))
        still_kept(self.blobs, [images[it.index] for it in items])

    def _write(self, writes: Sequence[_OutputWrite]) -> list[int]:
        """One transaction for the outputs of several requests; each request's usage is counted (and
        its monthly limit checked) in order. Returns the number of outputs written per request."""
        rows = [row for w in writes for row in w.rows]
        features = {digest: vec for w in writes for digest, vec in w.features.items()}
        with self.db.writing() as c:  # Core: every predict runs this, ORM objects would cost more than the rows
            c.execute(_ADD_OUTPUT, rows[0] if len(rows) == 1 else rows)
            store_embeddings(c, features)
            for w in writes:
                count_usage(c, w.caller, "predict", len(w.rows))
        still_stored(self.db, features)
        return [len(w.rows) for w in writes]

    def prune(self, older_than: dt.datetime, output_ids: Collection[str] | None = None) -> int:
        """Drop outputs older than the retention horizon that no feedback refers to (of ``output_ids``,
        if given), and then their images and embeddings that nothing else needs; returns how many
        outputs went.

        An output with feedback stays as long as its feedback does (feedback retention decides):
        evaluating a version compares what it said with what users corrected.
        """
        judged = select(FeedbackEvent.id).where(FeedbackEvent.output_id == Output.id).exists()
        where = [Output.created_at < older_than, ~judged]
        if output_ids is not None:
            where.append(Output.id.in_(sorted(output_ids)))
        with self.db.transaction() as s:
            gone = s.execute(delete(Output).where(*where).returning(Output.digest)
                             .execution_options(synchronize_session=False)).scalars().all()
        self.collector.collect(gone)
        self.embeddings.collect(gone)
        return len(gone)


def store_embeddings(s: Session | Connection, vectors: dict[str, np.ndarray]) -> None:
    """Insert raw features by image digest unless present (racing writers of one image are fine)."""
    insert_missing(s, Embedding, [{"digest": digest, "space": EMBEDDING_SPACE, "vector": embedding_bytes(vec)}
                                  for digest, vec in vectors.items()], key=("digest", "space"))


def still_stored(db: Database, vectors: dict[str, np.ndarray]) -> None:
    """After the commit of rows that need ``vectors`` (raw features by digest): insert those an
    embedding collector in another process deleted between this writer's insert and that commit
    (the race :mod:`visionloop.services.embedding_gc` explains); one indexed read when none was."""
    if not vectors:
        return
    with db.reading() as c:
        present = {r.digest for r in _STORED.all(c, {"space": EMBEDDING_SPACE}, digest=sorted(vectors))}
    if missing := {d: v for d, v in vectors.items() if d not in present}:
        with db.transaction() as s:
            store_embeddings(s, missing)


def result_json(pred: Prediction) -> dict[str, Any]:
    """The stored form of a prediction: top concepts, every region and, from a trained region version,
    every raw candidate (embeddings live elsewhere)."""
    out: dict[str, Any] = {
        "concepts": [[c.id, c.name, round(c.value, 6)] for c in pred.concepts[:STORED_CONCEPTS]],
        "regions": [_region_json(r) for r in pred.regions],
    }
    if pred.candidates is not None:
        out["candidates"] = [_region_json(r) for r in pred.candidates]
    if pred.colors:
        out["colors"] = [[c.raw_hex, c.w3c_hex, c.w3c_name, round(c.value, 6)] for c in pred.colors]
    if pred.focus is not None:
        out["focus"] = [round(pred.focus.value, 6), round(pred.focus.density, 6)]
    return out


def _region_json(r: Region) -> dict[str, Any]:
    out = {"id": r.id, "box": [r.box.top, r.box.left, r.box.bottom, r.box.right], "value": r.value,
           "concepts": [[c.id, c.name, c.value] for c in r.concepts]}
    if r.focus is not None:
        out["focus"] = [round(r.focus.value, 6), round(r.focus.density, 6)]
    return out
