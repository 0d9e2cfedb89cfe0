"""Detection versions learned from boxes: the logo model and an app's own detection models.

Their base versions detect nothing, so region feedback is not a verdict on candidates to
re-weigh (as for the face model, :mod:`region_learning`) but the teaching itself. Per judged
output, once its end users' statements are resolved as :func:`region_learning.statements` does
(each user's latest word per region, reliability-weighted votes, the most trusted user's box):

==================  ===============================================================
feedback            what the detector learns
==================  ===============================================================
not_detected        the drawn box shows its concepts
accurate            the shown region is right, with its box
misplaced           the region is there, in the box the user drew
false_positive      the shown region's box does not show its concept
(everything else)   the rest of a judged image shows none of the learned concepts
==================  ===============================================================

The app's input annotations with regions teach too (``POST``/``PATCH /v2/inputs`` with
``data.regions``): a concept with value true is a box showing it, false a box not showing it, and the
rest of an annotated image shows none of the learned concepts. An input counts when one of its
regions names a concept the model learns; the :data:`MAX_IMAGES` most recently annotated are read.
Where an annotation and a feedback box of one concept overlap (IoU 0.5) on one image, the
annotation, the app's own word, wins.

The images are the outputs' stored images; the latest output of an image wins. An app's own
detection model refuses to predict before its first version, so the boxes naming its concepts on
any of the app's detection models' outputs (the logo model's, say) teach it as well as its own. A concept needs
:data:`MIN_BOXES` boxes (on as many images) to be learned: the evaluation is a
:data:`~visionloop.learning.detector.BoxDetector` k-fold over images, and with fewer boxes
a fold holds one or two of them, which says nothing of precision or recall (the benchmark in
docs/detection-learning.md measures how F1 grows with the boxes given).

Promotion: over the base version (which finds nothing), a version that finds something at
:data:`USEFUL_PRECISION` on its cross-validated detections; over a trained version, the
champion/challenger rule on region F1 with both re-played on the same judged images (the
champion may have seen them, which only favours it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from visionloop import errors
from visionloop.ids import new_id
from visionloop.inference.catalog import CUSTOM_DETECTOR, DETECTION
from visionloop.inference.predictions import ConceptScore, Prediction, Region
from visionloop.inference.predictors import Predictor
from visionloop.inference.runtime import ModelRuntime
from visionloop.learning.boxes import Box, as_box, iou
from visionloop.learning.detector import BoxDetector, Detection, from_bytes, to_bytes
from visionloop.learning.estimates import Estimate
from visionloop.learning.metrics_detection import DetectionScores, Scored, score_detections
from visionloop.learning.metrics_regions import MIN_COUNT
from visionloop.learning.promotion import decide
from visionloop.learning.region_votes import Statements
from visionloop.learning.vocabulary import EventType, RegionFeedback
from visionloop.services.input_regions import box_of, regions_of
from visionloop.services.models import SHARED, chosen_concepts
from visionloop.services.training.concept_training import InsufficientData, estimate_json
from visionloop.services.training.region_learning import Crops, statements
from visionloop.store.blobs import BlobMissing, BlobStore
from visionloop.store.db import Database
from visionloop.store.tables import (
    Concept,
    FeedbackEvent,
    Input,
    InputRegion,
    Model,
    ModelVersion,
    Output,
    input_has_image,
)

DETECTOR_KIND = "box_detector"
LEARNED_RUNTIMES = ("logo", CUSTOM_DETECTOR)  # detection models whose versions learn from boxes
MIN_BOXES = 10
USEFUL_PRECISION = 0.5
BATCH = 16  # images per forward pass
MAX_IMAGES = 400  # the most recently judged images a training reads: bounded time and memory
SCANNED = 5000  # the newest feedback events and annotated regions a check for new statements reads
Progress = Callable[[str], None]


@dataclasses.dataclass(frozen=True)
class TaughtImage:
    """One judged image: the boxes showing concepts, the boxes said not to show theirs; ``annotated``
    holds the truths that came from input annotations (the others came from region feedback)."""

    digest: str
    truths: list[tuple[str, Box]]
    false_positives: list[tuple[str, Box]]
    annotated: frozenset[tuple[str, Box]] = frozenset()

    def with_annotations(self, annotation: TaughtImage) -> TaughtImage:
        """This image's feedback boxes beside ``annotation``'s, which win where they overlap."""
        said = annotation.truths + annotation.false_positives

        def kept(boxes: list[tuple[str, Box]]) -> list[tuple[str, Box]]:
            return [(c, b) for c, b in boxes if not any(c == c2 and iou(b, b2) >= 0.5 for c2, b2 in said)]

        return TaughtImage(self.digest, annotation.truths + kept(self.truths),
                           annotation.false_positives + kept(self.false_positives), annotation.annotated)


def annotated_images(s: Session, app_id: str, allowed: set[str] | None) -> dict[str, tuple[Any, TaughtImage]]:
    """(when annotated, what it teaches) by image digest, from the app's inputs with regions naming
    an ``allowed`` concept (any, when ``None``) and an image (not a failed download); the most
    recently annotated :data:`MAX_IMAGES`."""
    recent = (select(Input.id, Input.digest, Input.modified_at)
              .where(Input.app_id == app_id, input_has_image(), Input.id.in_(select(InputRegion.input_id)
                                                                             .where(InputRegion.app_id == app_id)))
              .order_by(Input.modified_at.desc(), Input.id).limit(MAX_IMAGES))
    inputs = {row.id: row for row in s.execute(recent)}
    out: dict[str, tuple[Any, TaughtImage]] = {}
    for input_id, rows in regions_of(s, app_id, list(inputs)).items():
        truths: list[tuple[str, Box]] = []
        negatives: list[tuple[str, Box]] = []
        for row in rows:
            for c in row.concepts:
                if allowed is None or c["id"] in allowed:
                    (truths if c["value"] >= 0.5 else negatives).append((c["id"], as_box(box_of(row))))
        if not truths and not negatives:
            continue
        digest, when = inputs[input_id].digest, inputs[input_id].modified_at
        image = TaughtImage(digest, truths, negatives, frozenset(truths))
        if digest in out:  # the same image added twice: both inputs' boxes
            before_when, before = out[digest]
            image = TaughtImage(digest, before.truths + truths, before.false_positives + negatives,
                                before.annotated | image.annotated)
            when = max(when, before_when)
        out[digest] = (when, image)
    return out


def taught(result: dict[str, Any], said: Statements) -> tuple[list[tuple[str, Box]], list[tuple[str, Box]]]:
    """(truths, false positives) of one output from its resolved statements (the module's table)."""
    shown = {r["id"]: (r["concepts"][0][0], as_box(r["box"])) for r in result.get("regions") or [] if r.get("concepts")}
    truths, false_positives = list(said.missed), []
    for rid, (feedback, box) in said.tied.items():
        if rid not in shown or feedback is RegionFeedback.NOT_DETECTED:
            continue
        concept, shown_box = shown[rid]
        if feedback is RegionFeedback.FALSE_POSITIVE:
            false_positives.append((concept, shown_box))
        else:
            truths.append((concept, box if feedback is RegionFeedback.MISPLACED else shown_box))
    return truths, false_positives


class DetectorPredictor:
    """A trained detection version: the backbone's feature map of each image, then its detector."""

    def __init__(self, runtime: ModelRuntime, detector: BoxDetector, names: dict[str, str]) -> None:
        self.runtime = runtime
        self.detector = detector
        self.names = names

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        found = self.detector.predict(list(self.runtime.feature_maps(images))) if images else []
        return [Prediction(regions=[_region(d, self.names) for d in dets]) for dets in found]


def _region(d: Detection, names: dict[str, str]) -> Region:
    return Region(id=new_id(), box=Box(*d.box), concepts=(ConceptScore(d.concept, names.get(d.concept, d.concept),
                                                                            d.value),), value=d.value)


def _scores_json(scores: DetectionScores) -> dict[str, Any]:
    return {**{k: estimate_json(v) for k, v in scores.figures().items()}, "ap": scores.ap,
            "ap_per_concept": scores.per_concept_ap, "false_positives": scores.false_positives,
            "images": scores.n_images}


class DetectionLearning:
    """Trains and loads ``box_detector`` versions (see the module docstring)."""

    def __init__(self, db: Database, blobs: BlobStore, runtime: ModelRuntime) -> None:
        self.db = db
        self.blobs = blobs
        self.runtime = runtime

    @staticmethod
    def learns(model: Model) -> bool:
        return model.runtime in LEARNED_RUNTIMES

    def detector_of(self, version: ModelVersion) -> BoxDetector:
        if not version.artifact_digest:
            raise errors.ModelInvalid(f"model version {version.id} has no artifact")
        return from_bytes(self.blobs.get(version.artifact_digest))

    def load(self, version: ModelVersion, model: Model, base: Predictor) -> Predictor:
        names = {c["id"]: c["name"] for c in (version.params or {}).get("concepts", [])}
        return DetectorPredictor(self.runtime, self.detector_of(version), names)

    def images(self, app_id: str, model: Model) -> tuple[list[TaughtImage], dict[str, str], dict[str, int]]:
        """The judged images, the concept names, and what was read."""
        allowed = {cid for cid, _ in chosen_concepts(model)} or None  # the logo model: any concept named
        with self.db.session() as s:
            pks = None
            if model.runtime == CUSTOM_DETECTOR:  # it predicts nothing before its first version: boxes
                # of its concepts drawn on any of the app's detection models' outputs teach it too
                pks = list(s.scalars(select(Model.pk).where(Model.app_id.in_([SHARED, app_id]),
                                                            Model.model_type == DETECTION)))
            said, n_events, last_seq = statements(s, app_id, model, allowed, pks)
            ids = list(said)
            rows = [row for start in range(0, len(ids), 500)
                    for row in s.execute(select(Output.id, Output.digest, Output.result, Output.created_at)
                                         .where(Output.app_id == app_id, Output.id.in_(ids[start:start + 500])))]
            by_digest: dict[str, tuple[Any, TaughtImage]] = {}
            for output_id, digest, result, created_at in sorted(rows, key=lambda r: r.created_at):
                truths, fps = taught(result or {}, said[output_id])
                if allowed is not None:
                    truths = [t for t in truths if t[0] in allowed]
                    fps = [f for f in fps if f[0] in allowed]
                by_digest[digest] = (created_at, TaughtImage(digest, truths, fps))  # the latest output wins
            annotated = annotated_images(s, app_id, allowed)
            for digest, (when, annotation) in annotated.items():
                before = by_digest.get(digest)
                by_digest[digest] = (when, annotation) if before is None else \
                    (max(when, before[0]), before[1].with_annotations(annotation))
            images = [image for _, image in sorted(by_digest.values(), key=lambda e: e[0])]
            concepts = {c for image in images for c, _ in image.truths}
            names = dict(s.execute(select(Concept.id, Concept.name)
                                   .where(Concept.app_id == app_id, Concept.id.in_(sorted(concepts)))).all())
        return images, names, {"events": n_events, "last_seq": last_seq, "outputs": len(rows),
                               "annotated_images": len(annotated)}

    @staticmethod
    def news(s: Session, model: Model, versions: Sequence[ModelVersion], enough: int) -> int:
        """What arrived to teach an app's own detection model since its newest version (counted up to
        ``enough``): region feedback events naming its concepts on any of the app's detection
        models' outputs (its own included), and inputs annotated since with regions naming them; of
        each the newest :data:`SCANNED` are read, so a check stays cheap however much is unread."""
        concepts = {cid for cid, _ in chosen_concepts(model)}
        since_seq = max([((v.params or {}).get("trained_on") or {}).get("last_seq", 0) for v in versions] or [0])
        detectors = select(Model.pk).where(Model.app_id.in_([SHARED, model.app_id]), Model.model_type == DETECTION)
        events = s.scalars(select(FeedbackEvent.body).where(
            FeedbackEvent.app_id == model.app_id, FeedbackEvent.event_type == EventType.ANNOTATION,
            FeedbackEvent.model_pk.in_(detectors), FeedbackEvent.output_id.is_not(None),
            FeedbackEvent.seq > since_seq).order_by(FeedbackEvent.seq.desc()).limit(SCANNED))
        n = 0
        for body in events:
            regions = ((body or {}).get("normalized") or {}).get("regions") or []
            n += any(c.get("id") in concepts for r in regions for c in r.get("concepts") or [])
            if n >= enough:
                return n
        annotated = (select(InputRegion.input_id, InputRegion.concepts)
                     .join(Input, (Input.app_id == InputRegion.app_id) & (Input.id == InputRegion.input_id))
                     .where(InputRegion.app_id == model.app_id).order_by(Input.modified_at.desc()).limit(SCANNED))
        if versions:
            annotated = annotated.where(Input.modified_at > max(v.created_at for v in versions))
        inputs: set[str] = set()
        for input_id, named in s.execute(annotated):
            if any(c["id"] in concepts for c in named):
                inputs.add(input_id)
                if n + len(inputs) >= enough:
                    break
        return n + len(inputs)

    def feature_maps(self, digests: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """Feature maps of the stored images still there (a pruned image is skipped), in float16:
        a few hundred images' maps fit in a few hundred megabytes."""
        crops = Crops(self.blobs, self.runtime, keep=BATCH)
        kept, maps = [], []
        for start in range(0, len(digests), BATCH):
            batch, images = [], []
            for digest in digests[start:start + BATCH]:
                try:
                    images.append(crops.image(digest))
                    batch.append(digest)
                except BlobMissing:
                    continue
            if images:
                maps.append(self.runtime.feature_maps(images).astype(np.float16))  # half the memory
                kept += batch
        return kept, (np.concatenate(maps) if maps else np.zeros((0,)))

    def examples(self, app_id: str, model: Model, version: ModelVersion, limit: int = 6
                 ) -> list[tuple[Image.Image, list[tuple[str, Box, float]], list[tuple[str, Box]]]]:
        """The latest judged images with the boxes drawn on them and what ``version`` finds there."""
        images, _, _ = self.images(app_id, model)
        crops = Crops(self.blobs, self.runtime, keep=limit)
        shown = []
        for taught_image in [i for i in images if i.truths][-limit:]:
            try:
                shown.append((crops.image(taught_image.digest), taught_image.truths))
            except BlobMissing:
                continue
        if not shown:
            return []
        found = self.detector_of(version).predict(list(self.runtime.feature_maps([im for im, _ in shown])))
        return [(im, [(d.concept, d.box, d.value) for d in dets], truths)
                for (im, truths), dets in zip(shown, found, strict=True)]

    def train(self, version: ModelVersion, model: Model, champion_version: ModelVersion, say: Progress
              ) -> tuple[dict[str, Any], dict[str, Any], str, bool]:
        say("reading region feedback and the judged images")
        images, names, counts = self.images(version.app_id, model)
        images = images[-MAX_IMAGES:]
        boxes: dict[str, int] = {}
        annotated: dict[str, int] = {}  # of which from input annotations
        for image in images:
            for truth in image.truths:
                boxes[truth[0]] = boxes.get(truth[0], 0) + 1
                annotated[truth[0]] = annotated.get(truth[0], 0) + (truth in image.annotated)
        wanted = [cid for cid, _ in chosen_concepts(model)] or sorted(boxes)
        skipped = {c: f"{boxes.get(c, 0)} boxes, at least {MIN_BOXES} needed" for c in wanted
                   if boxes.get(c, 0) < MIN_BOXES}
        learned = [c for c in wanted if c not in skipped]
        if not learned:
            detail = "; ".join(f"concept {c!r}: {why}" for c, why in skipped.items()) or "no boxes drawn yet"
            raise InsufficientData(
                f"not enough boxes to learn a detector: {detail}. A concept needs {MIN_BOXES} boxes (region feedback "
                "'not_detected', 'accurate' or 'misplaced' naming it, or input regions annotated with it), so that "
                "the cross-validation over images that measures the version has a few boxes in every fold",
                last_seq=counts["last_seq"])
        keep = set(learned)
        images = [dataclasses.replace(i, truths=[t for t in i.truths if t[0] in keep],
                                      false_positives=[f for f in i.false_positives if f[0] in keep]) for i in images]
        say(f"{counts['events']} region feedback events and {counts['annotated_images']} annotated images; "
            f"{len(images)} images, learning {len(learned)} concepts")
        digests, maps = self.feature_maps([i.digest for i in images])
        by_digest = {i.digest: i for i in images}
        images = [by_digest[d] for d in digests]
        truths = [i.truths for i in images]
        detector = BoxDetector().fit(list(maps), truths, [i.false_positives for i in images])
        challenger = score_detections([[Scored(d.concept, d.box, d.value) for d in image
                                        if d.value >= detector.thresholds_[d.concept]] for image in detector.oof_],
                                      truths)
        decision = self._decide(challenger, champion_version, list(maps), truths)
        n_annotated = sum(annotated[c] for c in learned)
        n_boxes = sum(boxes[c] for c in learned)
        origin = (f"{n_annotated} of its {n_boxes} boxes from input annotations, {n_boxes - n_annotated} from "
                  "region feedback")
        decision = (decision[0], f"{decision[1]} (learned {origin})")
        say(decision[1])
        params = {
            "kind": DETECTOR_KIND, "promoted": decision[0], "decision": decision[1],
            "concepts": [{"id": c, "name": names.get(c, c), "n_boxes": boxes[c], "n_annotated": annotated[c]}
                         for c in learned],
            "skipped": skipped,
            "learned": {"thresholds": detector.thresholds_, "candidate_boxes": int(len(detector.anchors_)),
                        "feature_map": f"{detector.grid_}x{detector.grid_}",
                        "false_positives": sum(len(i.false_positives) for i in images)},
            "trained_on": {**counts, "images": len(images), "boxes": sum(len(t) for t in truths),
                           "boxes_from_annotations": sum(t in i.annotated for i in images for t in i.truths),
                           "boxes_from_feedback": sum(t not in i.annotated for i in images for t in i.truths)},
        }
        metrics = {"cross_validation": {**_scores_json(challenger), "folds": detector.n_folds,
                                        "evaluated": detector.oof_evaluated_}}
        return params, metrics, self.blobs.put(to_bytes(detector)), decision[0]

    def _decide(self, challenger: DetectionScores, champion_version: ModelVersion, maps: list[np.ndarray],
                truths: list[list[tuple[str, Box]]]) -> tuple[bool, str]:
        figures = _with_evidence(challenger)
        p = challenger.precision.value
        if (champion_version.params or {}).get("kind") != DETECTOR_KIND:
            if challenger.f1.too_few:
                return False, f"refused: cross-validated on {challenger.f1.n} judged regions, fewer than {MIN_COUNT}"
            if p is None or challenger.recall.value in (None, 0.0) or p < USEFUL_PRECISION:
                return False, (f"refused: the base version finds nothing, and this one finds too little to replace it "
                               f"(cross-validated precision {p}, recall {challenger.recall.value}; precision "
                               f"{USEFUL_PRECISION} needed)")
            return True, (f"promoted: the base version finds nothing; cross-validated precision {p:.3f}, recall "
                          f"{challenger.recall.value:.3f}, F1 {challenger.f1.value:.3f}")
        champion = self.detector_of(champion_version)
        replayed = score_detections([[Scored(d.concept, d.box, d.value) for d in image]
                                     for image in champion.predict(maps)], truths)
        decision = decide(_with_evidence(replayed), figures, primary="f1")
        return decision.promote, decision.reason


def _with_evidence(scores: DetectionScores) -> dict[str, Estimate]:
    return {k: dataclasses.replace(e, too_few=e.n < MIN_COUNT) for k, e in scores.figures().items()}
