"""The learning service: train versions on request or when feedback accumulates, evaluate, promote.

A training request creates a model version at once, with Clarifai's status "queued for training"
(21103); the worker (or the request itself when no worker runs) moves it to "training" (21101),
then "trained" (21100) or "failed" (21106/21117 with the reason). A trained version is promoted —
made the app's active version — only if the champion/challenger rule says it is not worse on
held-out feedback. Versions are immutable once trained; promotion and rollback only move the
app's active-version pointer.

An operator's choice holds: a version activated by hand (a rollback included) is replaced by
automatic promotion only when a later version wins by that rule having learned from feedback
given since the activation. An erasure retrains a model only when the app's active version
learned from the erased events, and its result is promoted by the same rules; when nothing can be
trained the app falls back to the base version, unless the operator chose the version by hand.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from PIL import Image
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from visionloop import errors, status
from visionloop.ids import new_id
from visionloop.inference.catalog import COLOR, CONCEPT, CUSTOM, CUSTOM_DETECTOR, DETECTION, EMBED, EMBEDDING, FOCUS
from visionloop.inference.predictors import Predictor
from visionloop.inference.runtime import ModelRuntime
from visionloop.learning.heads import ConceptHeads, combine
from visionloop.learning.labels import UserReliability, down_weighted
from visionloop.learning.metrics_concepts import ConceptRecord
from visionloop.learning.vocabulary import EventType
from visionloop.metrics import METRICS
from visionloop.services.input_images import thumbnail
from visionloop.services.models import SHARED, ModelService, ModelView, chosen_concepts
from visionloop.services.training.click_learning import CLICK_KIND, ClickLearning
from visionloop.services.training.concept_training import InsufficientData, train_heads
from visionloop.services.training.data import concept_data, display, features, unit_rows
from visionloop.services.training.detection_learning import DETECTOR_KIND, LEARNED_RUNTIMES, DetectionLearning
from visionloop.services.training.evaluation import concept_metrics, concept_records, region_metrics, unlinked_events
from visionloop.services.training.region_learning import DETECTORS, RegionLearning
from visionloop.services.training.region_rules import REGION_KIND
from visionloop.services.training.report import (
    PLOTTING,
    ConceptExamples,
    calibration,
    confusion,
    example_concepts,
    example_detections,
    metrics_table,
    per_concept,
    pick_examples,
    pr_curves,
    quality_over_time,
    render,
)
from visionloop.services.training.scoring import HEADS_KIND, HeadPredictor
from visionloop.store.blobs import BlobMissing, BlobStore
from visionloop.store.db import Database, exclusive, serialize
from visionloop.store.tables import (
    DELETED_APP_PREFIX,
    ActiveVersion,
    FeedbackEvent,
    Input,
    InputConcept,
    InputConceptScore,
    Model,
    ModelVersion,
    Output,
    input_has_image,
    utcnow,
)

if TYPE_CHECKING:
    from visionloop.services.feedback.log import Erasure

log = logging.getLogger("visionloop.learning")
Progress = Callable[[str], None]
PENDING = "pending"
UNSURE = (0.25, 0.75)  # scores the review queue counts as the model being unsure
STAGES = 5  # what a concept model's training says it does (other kinds say fewer, then finish)
JOIN_TIMEOUT = 1800.0  # seconds a request without a worker waits for a version another process trains


class Stages:
    """Passes each stage of a training to ``say`` and records it on the version, with the share
    of the stages passed, for pages that poll its progress (any process on the database)."""

    def __init__(self, db: Database, version_id: str, say: Progress) -> None:
        self.db, self.version_id, self.say = db, version_id, say
        self.passed = 0

    def __call__(self, message: str) -> None:
        self.passed += 1
        progress = {"stage": message[:300], "fraction": round(self.passed / (STAGES + 1), 3)}
        with self.db.transaction() as s:
            s.execute(update(ModelVersion).where(ModelVersion.id == self.version_id).values(progress=progress))
        self.say(message)


@dataclasses.dataclass(frozen=True)
class Quality:
    """A version's quality as the report and the console show it (see :meth:`LearningService.quality`)."""

    view: ModelView
    version: ModelVersion
    live: dict[str, Any]
    summary: dict[str, Any]
    versions: list[ModelVersion]     # the app's versions of the model
    records: list[ConceptRecord]     # (score, label) per judged concept of the version's outputs
    names: dict[str, str] | None     # concept names of a concept model; None for another kind


class LearningService:
    def __init__(self, db: Database, blobs: BlobStore, models: ModelService, runtime: ModelRuntime, *,
                 blend_k: float) -> None:
        self.db = db
        self.blobs = blobs
        self.models = models
        self.runtime = runtime
        self.blend_k = blend_k
        self.submit: Callable[[str, str], None] | None = None  # (app, version): set by the worker when one runs
        self._queueing = threading.Lock()  # one request at a time decides whether to join a queued version
        self.regions = RegionLearning(db, blobs, runtime)  # detection models: region_calibration versions
        self.clicks = ClickLearning(db, blobs)  # the embedding model: click_model versions re-rank search
        self.detection = DetectionLearning(db, blobs, runtime)  # logo, custom detectors: learned from boxes
        models.version_loaders[HEADS_KIND] = self._load_heads
        models.version_loaders[REGION_KIND] = self.regions.load
        models.version_loaders[CLICK_KIND] = self.clicks.load
        models.version_loaders[DETECTOR_KIND] = self.detection.load

    # -- versions as predictors -----------------------------------------------------------------
    def _heads_of(self, version: ModelVersion) -> ConceptHeads:
        if not version.artifact_digest:
            raise errors.ModelInvalid(f"model version {version.id} has no artifact")
        return ConceptHeads.from_bytes(self.blobs.get(version.artifact_digest))

    def _load_heads(self, version: ModelVersion, model: Model, base: Predictor) -> Predictor:
        names = {c["id"]: c["name"] for c in (version.params or {}).get("concepts", [])}
        return HeadPredictor(base, self._heads_of(version), names, self.blend_k)

    # -- requests -------------------------------------------------------------------------------
    def request(self, app_id: str, model_ref: str, *, reliability: bool = True,
                after_erasure: bool = False, progress: Progress | None = None) -> ModelVersion:
        """Queue a new version of a model for this app; trains at once when no worker runs, telling
        ``progress`` how it goes (a worker logs instead).

        An app holds at most one queued version per model: while one waits for the worker, a
        request joins it (and gets its id; its options stay the first request's). A flood of
        requests is one job, and the worker's turns between apps keep every app's wait short.
        Without a worker here (the CLI beside a server) a request also joins a version another
        process is training, and waits for it: a server's automatic retrain and a ``learn`` call
        give one version.

        ``after_erasure``: the app's active version learned from feedback that was since erased;
        if nothing can be trained the app falls back to the base version (unless the active version
        was chosen by hand).
        """
        view = self.models.get(app_id, model_ref)
        if view.model.model_type == DETECTION and not self.detection.learns(view.model):
            self.regions.spec(view.model)  # refuses a detector without candidates to calibrate
        if view.model.runtime == CUSTOM and not chosen_concepts(view.model):
            raise errors.ModelInvalid(f"model {view.model.id!r} has no concepts to learn yet; add some with "
                                      "PATCH /v2/models (action merge) before training")
        if view.model.model_type in (COLOR, FOCUS):
            raise errors.ModelInvalid(f"model {view.model.id!r} ({view.model.name}) measures the image and has "
                                      "nothing to learn: its feedback is recorded, no version is trained from it")
        version = ModelVersion(id=new_id(), model_pk=view.model.pk, app_id=app_id, parent_id=view.version.id,
                               status_code=status.MODEL_QUEUED_FOR_TRAINING,
                               params={"kind": PENDING, "reliability": reliability,
                                       **({"after_erasure": True} if after_erasure else {})})
        submit = self.submit
        with self._queueing, self.db.transaction() as s:
            serialize(s, f"visionloop:queue:{app_id}:{view.model.pk}")  # other processes on one PostgreSQL
            # a version already training may have read feedback an erasure has since removed
            joinable = [status.MODEL_QUEUED_FOR_TRAINING] + (
                [status.MODEL_TRAINING] if submit is None and not after_erasure else [])
            pending = s.scalars(
                select(ModelVersion).where(ModelVersion.model_pk == view.model.pk, ModelVersion.app_id == app_id,
                                           ModelVersion.status_code.in_(joinable))
                .order_by(ModelVersion.created_at).limit(1)).first()
            if pending is not None:
                if after_erasure:
                    pending.params = {**(pending.params or {}), "after_erasure": True}
            else:
                s.add(version)
        if pending is not None:
            if submit is not None:
                return pending
            (progress or log.info)(f"joining version {pending.id}, already requested for this app and model")
            return self._finished(self.run(pending.id, progress), progress)
        if submit is not None:
            submit(app_id, version.id)
            return version
        return self.run(version.id, progress)

    def _finished(self, version: ModelVersion, progress: Progress | None, poll: float = 0.5) -> ModelVersion:
        """The version once another process has finished training it."""
        waited = 0.0
        while version.status_code in (status.MODEL_QUEUED_FOR_TRAINING, status.MODEL_TRAINING):
            if waited >= JOIN_TIMEOUT:
                raise errors.ModelInvalid(f"model version {version.id} has been training in another process for "
                                          f"{JOIN_TIMEOUT:.0f} s; if no server runs, start one: it resumes "
                                          "unfinished versions")
            if waited % 30 < poll and progress is not None:
                progress(f"version {version.id} is training in another process; waiting for it")
            time.sleep(poll)
            waited += poll
            with self.db.session() as s:
                found = s.get(ModelVersion, version.id)
            assert found is not None
            version = found
        return version

    def run(self, version_id: str, progress: Progress | None = None) -> ModelVersion:
        """Train a queued version (idempotent for one already finished or being trained).

        Several processes on one PostgreSQL may all try to resume a version (each resumes what it
        finds unfinished at start): the first to claim it trains it, the others return it as is.
        On any database, a version another process moved to "training" is left to it.
        """
        with exclusive(self.db.engine, f"visionloop:train:{version_id}", wait=False) as mine:
            if mine:
                return self._run(version_id, progress)
        with self.db.session() as s:
            version = s.get(ModelVersion, version_id)
        if version is None:
            raise errors.ModelNotFound(f"no model version {version_id!r}")
        return version

    def _run(self, version_id: str, progress: Progress | None) -> ModelVersion:
        say = Stages(self.db, version_id, progress or (lambda msg: log.info("version %s: %s", version_id, msg)))
        with self.db.transaction() as s:
            version = s.get(ModelVersion, version_id)
            if version is None:
                raise errors.ModelNotFound(f"no model version {version_id!r}")
            if version.status_code != status.MODEL_QUEUED_FOR_TRAINING:
                return version
            version.status_code = status.MODEL_TRAINING
            version.progress = {"stage": "started", "fraction": 0.0}
            model = s.get(Model, version.model_pk)
            assert model is not None
        started = time.monotonic()
        activation = self.models.activation(version.app_id, model)
        by_hand = activation is not None and activation.by_hand
        fall_back = bool((version.params or {}).get("after_erasure")) and not by_hand
        try:
            params, metrics, artifact, promote = self._train(version, model, say)
        except InsufficientData as exc:
            read = {} if exc.last_seq is None else {"trained_on": {"last_seq": exc.last_seq}}
            if fall_back:
                self.models.clear_active(version.app_id, model)
            return self._finish(version_id, status.MODEL_TRAINING_INSUFFICIENT_DATA,
                                {"kind": PENDING, "error": str(exc), **read}, {}, None, started)
        except Exception as exc:  # a failed job is recorded, never left "training"
            log.exception("training version %s failed", version_id)
            if fall_back:
                self.models.clear_active(version.app_id, model)
            return self._finish(version_id, status.MODEL_TRAINING_FAILED,
                                {"kind": PENDING, "error": f"{type(exc).__name__}: {exc}"}, {}, None, started)
        if promote and activation is not None and by_hand and not self._learned_since(activation, model, params):
            promote = False
            params = {**params, "promoted": False,
                      "decision": f"{params['decision']}; kept version {activation.version_id}, activated by hand: "
                                  "it is replaced only by a version that wins having learned from feedback given "
                                  "since"}
        done = self._finish(version_id, status.MODEL_TRAINED, params, metrics, artifact, started)
        if promote:
            self.models.set_active(version.app_id, model, version_id)
        return done

    def _learned_since(self, activation: ActiveVersion, model: Model, params: dict[str, Any]) -> bool:
        """Whether a version's training read feedback given after the activation (its own kind of feedback)."""
        last_seq = (params.get("trained_on") or {}).get("last_seq") or 0
        newer = select(FeedbackEvent.seq).where(FeedbackEvent.app_id == activation.app_id,
                                                FeedbackEvent.seq <= last_seq,
                                                FeedbackEvent.created_at >= activation.modified_at)
        newer = newer.where(FeedbackEvent.event_type == EventType.SEARCH_CLICK) if model.model_type == EMBEDDING \
            else newer.where(FeedbackEvent.model_pk == model.pk)
        with self.db.session() as s:
            return s.execute(newer.limit(1)).first() is not None

    def on_erasure(self, erasure: Erasure) -> None:
        """Feedback was erased: each model whose active version (for this app) learned from it is
        retrained without it; a version that learned nothing from it stays as it is."""
        with self.db.session() as s:
            trained = select(ModelVersion.model_pk).where(ModelVersion.app_id == erasure.app_id,
                                                          ModelVersion.status_code == status.MODEL_TRAINED)
            # IN, not DISTINCT over the rows: PostgreSQL cannot compare models.output_info (JSON)
            models = list(s.scalars(select(Model).where(Model.pk.in_(trained)).order_by(Model.pk)))
        for model in models:
            active = self.models.active_version(erasure.app_id, model)
            first = erasure.first_seqs.get(None if model.model_type == EMBEDDING else model.pk)
            read_to = ((active.params or {}).get("trained_on") or {}).get("last_seq") or 0
            if active.app_id != erasure.app_id or first is None or read_to < first:
                continue
            log.info("retraining %s for app %s after an erasure of %d events", model.id, erasure.app_id,
                     erasure.count)
            self.request(erasure.app_id, model.id, after_erasure=True)

    def _train(self, version: ModelVersion, model: Model, say: Progress
               ) -> tuple[dict[str, Any], dict[str, Any], str, bool]:
        if self.detection.learns(model):
            return self.detection.train(version, model, self.models.active_version(version.app_id, model), say)
        if model.model_type in (DETECTION, EMBEDDING):
            learner = self.regions if model.model_type == DETECTION else self.clicks
            return learner.train(version, model, self.models.active_version(version.app_id, model), say)
        reliability = bool((version.params or {}).get("reliability", True))
        say("aggregating feedback into labels")
        with self.db.session() as s:
            data = concept_data(s, version.app_id, model, reliability=reliability)
            feats = features(s, data.digests)
        champion_version = self.models.active_version(version.app_id, model)
        champion = self._heads_of(champion_version) if (champion_version.params or {}).get("kind") == HEADS_KIND \
            else None
        say(f"training on {len(data.labels)} labels from {data.n_events} feedback events")
        champion_seen = int(((champion_version.params or {}).get("trained_on") or {}).get("last_seq") or 0)
        trained = train_heads(data, feats, self.runtime, model.runtime, champion, champion_last_seq=champion_seen,
                              salt=version.app_id, blend_k=self.blend_k, progress=say)
        heads = trained.heads
        artifact = self.blobs.put(heads.to_bytes())
        promote, decision = trained.decision.promote, trained.decision.reason
        if not promote and champion_version.status_code != status.MODEL_TRAINED:
            promote, decision = True, f"promoted: the model's first trained version, nothing predicts yet ({decision})"
        params = {
            "kind": HEADS_KIND, "reliability": reliability,
            "concepts": [{"id": c, "name": data.names.get(c, c), "n_labels": int(n)}
                         for c, n in heads.evidence().items()],
            "skipped": {c: f"{display(c, data.names)}: {why}" for c, why in heads.skipped_.items()},
            "promoted": promote, "decision": decision,
            "trained_on": {"events": data.n_events, "labels": len(data.labels), "last_seq": data.last_seq,
                           "train_images": trained.n_train, "compared_images": trained.n_compared,
                           "end_users": len(data.aggregation.users), "down_weighted_users": len(down_weighted(data.aggregation))},
        }
        return params, {"holdout": trained.holdout}, artifact, promote

    def _finish(self, version_id: str, code: int, params: dict[str, Any], metrics: dict[str, Any],
                artifact: str | None, started: float) -> ModelVersion:
        """Record a job's outcome; ``started``: ``time.monotonic()`` when this process claimed it."""
        with self.db.transaction() as s:
            version = s.get(ModelVersion, version_id)
            assert version is not None
            version.status_code = code
            version.progress = None
            version.params = {**(version.params or {}), **params}
            version.metrics = metrics
            version.artifact_digest = artifact
        METRICS.trained(code, time.monotonic() - started)
        return version

    # -- evaluation, promotion ------------------------------------------------------------------
    def evaluate(self, app_id: str, view: ModelView, version: ModelVersion) -> dict[str, Any]:
        """Recompute a version's live metrics from the feedback on its outputs; stored on the version."""
        with self.db.session() as s:
            if view.model.model_type == DETECTION:
                live = region_metrics(s, app_id, version)
            elif view.model.model_type == EMBEDDING:
                live = {**self.clicks.metrics(app_id), "note": "the app's searches, whichever version ranked them"}
            else:
                live = concept_metrics(s, app_id, view.model, version)
            live["unlinked_events"] = unlinked_events(s, app_id, view.model, version)
        live["evaluated_at"] = utcnow().isoformat()
        if version.app_id == app_id:  # a shared base version's figures belong to every app: not stored
            with self.db.transaction() as s:
                row = s.get(ModelVersion, version.id)
                assert row is not None
                row.metrics = {**(row.metrics or {}), "live": live}
        return live

    def report(self, app_id: str, model_ref: str, version_id: str | None = None) -> tuple[dict[str, Any], str]:
        """Live metrics of a version (default: the app's active one) and an HTML report with plots."""
        view = self.models.get(app_id, model_ref)
        live, summary, figures = self.report_parts(app_id, model_ref, version_id)
        return live, render(f"visionloop evaluation: {view.model.name}", summary, figures, metrics_table(live))

    def quality(self, app_id: str, model_ref: str, version_id: str | None = None) -> Quality:
        """What a version's quality is shown with (default: the app's active version): its live
        metrics (evaluated now), the summary table, the app's versions of the model, and the
        (score, label) records its curves are drawn from (concept models only)."""
        view = self.models.get(app_id, model_ref)
        version = self.models.version(app_id, view.model, version_id) if version_id else view.version
        live = self.evaluate(app_id, view, version)
        with self.db.session() as s:
            versions = list(s.scalars(select(ModelVersion).where(ModelVersion.model_pk == view.model.pk,
                                                                 ModelVersion.app_id == app_id)))
            data = concept_data(s, app_id, view.model) if view.model.model_type == CONCEPT else None
            records = concept_records(s, app_id, data, version) if data is not None else []
        headline = live.get("macro_auc") or live.get("summary", {}).get("f1") or {}
        summary = {"app": app_id, "model": f"{view.model.name} ({view.model.id})", "version": version.id,
                   "versions trained for this app": sum(v.status_code == status.MODEL_TRAINED for v in versions),
                   "training runs for this app": len(versions),
                   "headline": _figure(headline),
                   "unlinked feedback (no output here to score)": live["unlinked_events"],
                   "evaluated at": live["evaluated_at"]}
        return Quality(view, version, live, summary, versions, records, data.names if data is not None else None)

    def detection_examples(self, app_id: str, quality: Quality) -> str | None:
        """Judged images with what a detector version finds on them (a PNG), or None for another kind."""
        if (quality.version.params or {}).get("kind") != DETECTOR_KIND:
            return None
        with PLOTTING:
            return example_detections(self.detection.examples(app_id, quality.view.model, quality.version))

    def report_parts(self, app_id: str, model_ref: str, version_id: str | None = None
                     ) -> tuple[dict[str, Any], dict[str, Any], list[tuple[str, str | None]]]:
        """What the report shows: live metrics, the summary table, and (title, base64 PNG or None) plots."""
        q = self.quality(app_id, model_ref, version_id)
        examples = pick_examples(q.records, q.live.get("threshold", 0.5)) if q.names is not None else []
        with self.db.session() as s:
            images = self._example_images(s, app_id, examples)
        with PLOTTING:
            figures = [("Quality over time", quality_over_time(q.versions)), ("Per concept", per_concept(q.live))]
            if q.names is not None:  # a detection's feedback judges boxes, not scores to sweep
                figures += [("Precision-recall curves", pr_curves(q.records, q.names)),
                            ("Calibration", calibration(q.records)),
                            ("Top concept: what users said vs what the version said", confusion(q.live)),
                            ("Examples by concept", example_concepts(examples, images, q.names))]
        if (q.version.params or {}).get("kind") == DETECTOR_KIND:
            figures.append(("Example detections on judged images", self.detection_examples(app_id, q)))
        return q.live, q.summary, figures

    def _example_images(self, s: Session, app_id: str, examples: list[ConceptExamples]
                        ) -> dict[Hashable, Image.Image]:
        """The thumbnails of the examples' outputs, by output id (one whose stored image is gone is left out)."""
        wanted = {str(r.output_id) for e in examples for r, _ in e.records()}
        if not wanted:
            return {}
        digests = dict(s.execute(select(Output.id, Output.digest).where(Output.app_id == app_id,
                                                                       Output.id.in_(wanted))).all())
        images: dict[Hashable, Image.Image] = {}  # keyed as the examples' records are
        for output_id, digest in digests.items():
            with contextlib.suppress(BlobMissing):
                images[output_id] = Image.open(io.BytesIO(thumbnail(self.blobs, digest)))
        return images

    def reliability(self, app_id: str, model_ref: str) -> tuple[list[UserReliability], set[str | None]]:
        """How the next training of a concept model would weigh each end user's votes (the least
        trusted first), and who counts less than half a newcomer: reads the model's whole log."""
        view = self.models.get(app_id, model_ref)
        if view.model.model_type != CONCEPT:
            raise errors.ModelInvalid(f"model {view.model.id!r} ({view.model.name}) is not a concept model: end users' "
                                      "reliability is learned from concept feedback")
        with self.db.session() as s:
            aggregation = concept_data(s, app_id, view.model).aggregation
        users = sorted(aggregation.users.values(), key=lambda u: (u.weight, str(u.end_user)))
        return users, set(down_weighted(aggregation))

    def least_certain(self, app_id: str, model_ref: str, limit: int = 30, window: int = 2000
                      ) -> tuple[ModelVersion, list[tuple[str, str, float]]]:
        """The app's active version of a concept model and the (input, concept, score) it is least
        sure of (scores nearest 0.5, between 0.25 and 0.75) among the app's latest ``window`` stored
        images, leaving out what the app has annotated. A version with learned heads scores the
        stored features now, as it predicts; a base version's scores are those taken when each
        input was added."""
        view = self.models.get(app_id, model_ref)
        version = view.version
        with self.db.session() as s:
            rows = s.execute(select(Input.id, Input.digest).where(Input.app_id == app_id, input_has_image())
                             .order_by(Input.created_at.desc(), Input.id).limit(window)).all()
            ids = [r.id for r in rows]
            base: dict[str, dict[str, float]] = {}
            for input_id, concept_id, value in s.execute(
                    select(InputConceptScore.input_id, InputConceptScore.concept_id, InputConceptScore.value)
                    .where(InputConceptScore.app_id == app_id, InputConceptScore.input_id.in_(ids))):
                base.setdefault(input_id, {})[concept_id] = value
            labelled = {(i, c) for i, c in s.execute(
                select(InputConcept.input_id, InputConcept.concept_id)
                .where(InputConcept.app_id == app_id, InputConcept.input_id.in_(ids)))}
            feats = features(s, [r.digest for r in rows]) if (version.params or {}).get("kind") == HEADS_KIND else {}
        scores = base
        if feats:
            heads = self._heads_of(version)
            shares = heads.shares(self.blend_k)
            scored = [r for r in rows if r.digest in feats]
            learned = heads.scores(unit_rows(np.stack([feats[r.digest] for r in scored])))
            scores = {**base, **{r.id: combine(base.get(r.id, {}), h, shares) for r, h in zip(scored, learned)}}
        unsure = sorted(((i, c, v) for i, by in scores.items() for c, v in by.items()
                         if UNSURE[0] <= v <= UNSURE[1] and (i, c) not in labelled),
                        key=lambda t: (abs(t[2] - 0.5), t[0], t[1]))
        return version, unsure[:limit]

    def activate(self, app_id: str, model_ref: str, version_id: str) -> ModelView:
        """Promote or roll back: the app predicts with this trained version from now on."""
        view = self.models.get(app_id, model_ref)
        version = self.models.version(app_id, view.model, version_id)
        if version.status_code != status.MODEL_TRAINED:
            raise errors.ModelInvalid(f"model version {version_id!r} is not trained (status {version.status_code})")
        self.models.set_active(app_id, view.model, version_id, by_hand=True)
        return self.models.get(app_id, model_ref)

    # -- when to retrain ------------------------------------------------------------------------
    def due(self, min_new_events: int) -> list[tuple[str, str]]:
        """(app, model id) pairs with at least ``min_new_events`` new feedback events since the newest
        version trained (or refused for too little data) for that app: concept or region feedback for
        concept models and the face and logo models, search clicks for the embedding model's ranking;
        for an app's own detection model, region feedback naming its concepts on any of the app's
        detection models' outputs and inputs annotated with regions naming them
        (:meth:`DetectionLearning.news`)."""
        out = []
        with self.db.session() as s:
            pairs = s.execute(select(FeedbackEvent.app_id, FeedbackEvent.model_pk)
                              .where(FeedbackEvent.event_type == EventType.ANNOTATION,
                                     FeedbackEvent.model_pk.is_not(None))
                              .group_by(FeedbackEvent.app_id, FeedbackEvent.model_pk)).all()
            embed = s.scalar(select(Model.pk).where(Model.app_id == SHARED, Model.id == EMBED.id))
            clicked = s.scalars(select(FeedbackEvent.app_id).where(FeedbackEvent.event_type == EventType.SEARCH_CLICK)
                                .group_by(FeedbackEvent.app_id)).all()
            watched = [(a, m, EventType.ANNOTATION) for a, m in pairs]
            watched += [(a, embed, EventType.SEARCH_CLICK) for a in clicked if embed]
            for app_id, model_pk, event_type in watched:
                model = s.get(Model, model_pk)
                if model is None or model.app_id not in (SHARED, app_id) or model.runtime == CUSTOM_DETECTOR or not (
                        model.model_type in (CONCEPT, EMBEDDING) or model.runtime in DETECTORS
                        or model.runtime in LEARNED_RUNTIMES):
                    continue
                versions = list(s.scalars(select(ModelVersion).where(ModelVersion.model_pk == model_pk,
                                                                     ModelVersion.app_id == app_id)))
                if _busy(versions):
                    continue
                since = max([(v.params or {}).get("trained_on", {}).get("last_seq", 0) for v in versions] or [0])
                events = select(func.count()).select_from(FeedbackEvent).where(
                    FeedbackEvent.app_id == app_id, FeedbackEvent.event_type == event_type, FeedbackEvent.seq > since)
                # unlinked clicks teach nothing; a COUNT is never NULL
                new = cast(int, s.scalar(events.where(FeedbackEvent.search_id.is_not(None))
                                         if event_type == EventType.SEARCH_CLICK
                                         else events.where(FeedbackEvent.model_pk == model_pk)))
                if new >= min_new_events:
                    out.append((app_id, model.id))
            for model in s.scalars(select(Model).where(Model.runtime == CUSTOM_DETECTOR,
                                                       ~Model.app_id.startswith(DELETED_APP_PREFIX))):
                versions = list(s.scalars(select(ModelVersion).where(ModelVersion.model_pk == model.pk,
                                                                     ModelVersion.app_id == model.app_id)))
                if _busy(versions):
                    continue
                if self.detection.news(s, model, versions, min_new_events) >= min_new_events:
                    out.append((model.app_id, model.id))
        return out

    def unfinished(self) -> list[tuple[str, str]]:
        """(app, version) of versions a crash left queued or training, queued again: the worker resumes
        them at start (on PostgreSQL, one another live process is training stays its: see :meth:`run`)."""
        with self.db.transaction() as s:
            left = list(s.scalars(select(ModelVersion).where(
                ModelVersion.status_code.in_([status.MODEL_QUEUED_FOR_TRAINING, status.MODEL_TRAINING]))
                .order_by(ModelVersion.created_at)))
            for version in left:
                version.status_code = status.MODEL_QUEUED_FOR_TRAINING
            return [(v.app_id, v.id) for v in left]


def _busy(versions: list[ModelVersion]) -> bool:
    """A version of these is queued or training: the worker waits for it."""
    return any(v.status_code in (status.MODEL_QUEUED_FOR_TRAINING, status.MODEL_TRAINING) for v in versions)


def _figure(e: dict[str, Any]) -> str:
    if not e or e.get("value") is None:
        return "undefined (no labels yet)"
    interval = f" [{e['low']:.3f}, {e['high']:.3f}]" if e.get("low") is not None else ""
    thin = " — too few labels" if e.get("too_few") else ""
    return f"{e['value']:.3f}{interval} on {e['n']} labels{thin}"
