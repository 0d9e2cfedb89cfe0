"""Region versions from region feedback: what each judged output says about its detector's candidates.

For every output of the model that region feedback judged, the detector's raw candidates are
known: stored with the output by a trained version, or detected again from the stored image (the
base version keeps only what it showed; detection is deterministic). Feedback labels candidates:

==================  ===========================================================================
feedback            label
==================  ===========================================================================
accurate            the tied candidate is real; its right box is the one shown
misplaced           the tied candidate is real; its right box is the user's
false_positive      the tied candidate is not real (and its crop is remembered for suppression)
not_detected        the candidate overlapping the user's box best (IoU >= 0.5) is real, with the
                    user's box (a missed region recovered among the low-score candidates); on an
                    output with such a report, the candidates that were not shown and match no
                    report are taken as not real — the user said what was missed. A box no
                    candidate overlaps is unreachable: every version of this detector misses it
==================  ===========================================================================

An untied ``accurate`` or ``misplaced`` box (nothing predicted overlapped it) counts as missed.

Several end users may judge one output: their statements are resolved by a reliability-weighted
vote (:mod:`visionloop.learning.region_votes`), so a careless or hostile user cannot turn real
faces into false positives, or add boxes that are not there, against the others.

Training (outputs whose image hashes to the training side, :mod:`visionloop.learning.split`):
thresholds from the labelled candidates' scores, box corrections from the real ones' (raw, right)
box pairs, suppression memory from crops. Champion and challenger are then re-played on the
held-out outputs' candidates and scored by region F1; the challenger is promoted only if not worse.

Only detectors that offer scored candidates can be calibrated: the face model. The logo model's
base version detects nothing, so there are no scores, boxes or crops of detections to learn from:
its versions learn a detector from the boxes themselves (:mod:`.detection_learning`).
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from visionloop import errors
from visionloop.ids import new_id
from visionloop.inference.predictors import FACE_THRESHOLD, Predictor
from visionloop.inference.runtime import ModelRuntime
from visionloop.learning.boxes import Box, as_box, iou, same
from visionloop.learning.metrics_regions import MIN_COUNT, JudgedRegion, evaluate_regions
from visionloop.learning.promotion import Decision, decide
from visionloop.learning.region_calibration import MIN_JUDGED, calibrate_thresholds, fit_box_corrections
from visionloop.learning.region_votes import MATCH_IOU, Statements, resolve
from visionloop.learning.split import is_held_out
from visionloop.learning.vocabulary import EventKind, EventType, RegionFeedback
from visionloop.services.images import CheckedImage, open_rgb
from visionloop.services.training.concept_training import InsufficientData, estimate_json
from visionloop.services.training.region_rules import (
    CANDIDATE_FLOOR,
    REGION_KIND,
    Candidate,
    Detect,
    Embed,
    RegionRules,
    RegionRulesPredictor,
    crop_embeddings,
)
from visionloop.store.blobs import BlobMissing, BlobStore
from visionloop.store.db import Database
from visionloop.store.tables import FeedbackEvent, Model, ModelVersion, Output

SAME_BOX_IOU = 0.9  # a region the base version showed is the re-detected candidate with this overlap
MAX_OUTPUTS = 5000  # the most recently judged outputs a training reads
MAX_MEMORY = 1000  # crops remembered of each kind (false positive, real)
PRIMARY = "f1"
Progress = Callable[[str], None]
ACCURATE, MISPLACED = RegionFeedback.ACCURATE, RegionFeedback.MISPLACED
NOT_DETECTED, FALSE_POSITIVE = RegionFeedback.NOT_DETECTED, RegionFeedback.FALSE_POSITIVE


@dataclasses.dataclass(frozen=True)
class DetectorSpec:
    concept: str
    name: str
    threshold: float  # the base version's
    detect: Callable[[ModelRuntime], Detect]


def _faces(runtime: ModelRuntime) -> Detect:
    def detect(image: Image.Image, min_score: float) -> list[Candidate]:
        return [Candidate(new_id(), "face", "face", Box(d.top, d.left, d.bottom, d.right), float(d.score))
                for d in runtime.detect_faces(image, min_score=min_score)]
    return detect


DETECTORS = {"face": DetectorSpec("face", "face", FACE_THRESHOLD, _faces)}  # by model runtime


# -- what the feedback says -------------------------------------------------------------------------
def statements(s: Session, app_id: str, model: Model, concepts: set[str] | None,
               model_pks: Sequence[int] | None = None) -> tuple[dict[str, Statements], int, int]:
    """Statements per output id (the most recently judged last), resolved across end users; the
    events read, the last sequence. ``model_pks``: read the outputs of these models instead."""
    by_user: dict[str, dict[str | None, Statements]] = {}
    n_events, last_seq = 0, 0
    rows = s.execute(select(FeedbackEvent.seq, FeedbackEvent.output_id, FeedbackEvent.end_user_id, FeedbackEvent.body)
                     .where(FeedbackEvent.app_id == app_id, FeedbackEvent.model_pk.in_(model_pks or [model.pk]),
                            FeedbackEvent.event_type == EventType.ANNOTATION, FeedbackEvent.output_id.is_not(None))
                     .order_by(FeedbackEvent.seq))
    for seq, output_id, end_user, body in rows:
        normalized = (body or {}).get("normalized") or {}
        if normalized.get("kind") != EventKind.REGIONS:
            continue
        n_events, last_seq = n_events + 1, seq
        users = by_user[output_id] = by_user.pop(output_id, {})  # moved to the end: most recent
        said = users.setdefault(end_user, Statements())
        for region in normalized.get("regions") or []:
            said.add(region, concepts)
    recent = list(by_user)[-MAX_OUTPUTS:]
    return resolve({k: by_user[k] for k in recent}), n_events, last_seq


@dataclasses.dataclass(frozen=True)
class Labelled:
    """A candidate whose truth the feedback tells."""

    candidate: Candidate
    real: bool
    truth: Box | None  # the right box of a real one
    said: str  # the feedback it comes from; "unreported" for a candidate taken as not real
    shown: bool  # by the version that made the output


@dataclasses.dataclass(frozen=True)
class JudgedOutput:
    output_id: str
    digest: str
    labelled: list[Labelled]
    unreachable: list[tuple[str, Box]]  # missed regions no candidate overlaps


def label(output_id: str, digest: str, candidates: Sequence[Candidate], shown: dict[str, Box],
          said: Statements) -> JudgedOutput:
    """The labels the module docstring tables."""
    by_id = {c.id: c for c in candidates}
    labelled: dict[str, Labelled] = {}
    for rid, (feedback, box) in said.tied.items():
        c = by_id.get(rid)
        if c is None or feedback is NOT_DETECTED:
            continue
        if feedback is FALSE_POSITIVE:
            labelled[rid] = Labelled(c, False, None, feedback.value, rid in shown)
        else:
            truth = box if feedback is MISPLACED else shown.get(rid, c.box)
            labelled[rid] = Labelled(c, True, truth, feedback.value, rid in shown)
    pairs = sorted((-iou(c.box, box), k, c.id) for k, (concept, box) in enumerate(said.missed)
                   for c in candidates if c.concept == concept and c.id not in labelled and iou(c.box, box) >= MATCH_IOU)
    recovered: set[int] = set()
    for _, k, cid in pairs:
        if k not in recovered and cid not in labelled:
            recovered.add(k)
            labelled[cid] = Labelled(by_id[cid], True, said.missed[k][1], NOT_DETECTED.value, cid in shown)
    if said.missed:
        for c in candidates:
            if c.id not in labelled and c.id not in shown:
                labelled[c.id] = Labelled(c, False, None, "unreported", False)
    unreachable = [m for k, m in enumerate(said.missed) if k not in recovered]
    return JudgedOutput(output_id, digest, list(labelled.values()), unreachable)


def stored_candidates(result: dict[str, Any]) -> list[Candidate] | None:
    """The raw candidates a trained version stored with its output (None: a base version's output)."""
    if "candidates" not in result:
        return None
    return [Candidate(r["id"], r["concepts"][0][0], r["concepts"][0][1], as_box(r["box"]), float(r["value"]))
            for r in result["candidates"]]


def redetected(output_id: str, result: dict[str, Any], detected: list[Candidate]) -> list[Candidate]:
    """The re-detected candidates, the shown regions among them taking the ids they were shown with."""
    regions = result.get("regions") or []
    pairs = sorted((-iou(as_box(r["box"]), c.box), i, j) for i, r in enumerate(regions)
                   for j, c in enumerate(detected) if iou(as_box(r["box"]), c.box) >= SAME_BOX_IOU)
    shown_as: dict[int, str] = {}  # detected index -> the id its region was shown with
    matched: set[int] = set()  # region indexes
    for _, i, j in pairs:
        if i not in matched and j not in shown_as:
            shown_as[j] = regions[i]["id"]
            matched.add(i)
    out = [dataclasses.replace(c, id=shown_as.get(j, f"{output_id}:{j}")) for j, c in enumerate(detected)]
    out += [Candidate(r["id"], r["concepts"][0][0], r["concepts"][0][1], as_box(r["box"]), float(r["value"]))
            for i, r in enumerate(regions) if i not in matched]  # shown but not re-detected: kept as shown
    return out


# -- images and crops -------------------------------------------------------------------------------
class Crops:
    """Stored images (a few decoded at a time) and the crop embeddings of candidates, each computed once."""

    def __init__(self, blobs: BlobStore, runtime: ModelRuntime, keep: int = 16) -> None:
        self.blobs = blobs
        self.runtime = runtime
        self.keep = keep
        self._images: collections.OrderedDict[str, Image.Image] = collections.OrderedDict()
        self._vectors: dict[tuple[str, str], np.ndarray] = {}

    def image(self, digest: str) -> Image.Image:
        if digest not in self._images:
            data = self.blobs.get(digest)
            self._images[digest] = open_rgb(CheckedImage(data=data, digest=digest, width=0, height=0, format="stored"))
            while len(self._images) > self.keep:
                self._images.popitem(last=False)
        self._images.move_to_end(digest)
        return self._images[digest]

    def of(self, output: JudgedOutput) -> Embed:
        def embed(candidates: Sequence[Candidate]) -> np.ndarray:
            missing = [c for c in candidates if (output.output_id, c.id) not in self._vectors]
            if missing:
                vectors = crop_embeddings(self.runtime, self.image(output.digest), [c.box for c in missing])
                for c, v in zip(missing, vectors, strict=True):
                    self._vectors[(output.output_id, c.id)] = v
            return np.stack([self._vectors[(output.output_id, c.id)] for c in candidates])
        return embed

    def many(self, items: Sequence[tuple[JudgedOutput, Candidate]]) -> np.ndarray:
        by_output: dict[str, tuple[JudgedOutput, list[Candidate]]] = {}
        for o, c in items:
            by_output.setdefault(o.output_id, (o, []))[1].append(c)
        for o, cs in by_output.values():
            self.of(o)(cs)
        if not items:
            return np.zeros((0, 0), np.float32)
        return np.stack([self._vectors[(o.output_id, c.id)] for o, c in items]).astype(np.float32)


# -- fitting and re-playing -------------------------------------------------------------------------
def fit_rules(train: Sequence[JudgedOutput], spec: DetectorSpec, crops: Crops) -> tuple[RegionRules, dict[str, Any]]:
    """A version's rules from the training outputs, and what was learned (JSON-ready, with reasons)."""
    labelled = [(o, lab) for o in train for lab in o.labelled]
    thresholds = calibrate_thresholds([(lab.candidate.concept, lab.candidate.score, lab.real) for _, lab in labelled],
                                      default=spec.threshold, min_judged=MIN_JUDGED)
    pairs: dict[str, list[tuple[Box, Box]]] = {}
    for _, lab in labelled:
        if lab.real and lab.truth is not None:
            pairs.setdefault(lab.candidate.concept, []).append((lab.candidate.box, lab.truth))
    corrections = fit_box_corrections(pairs)
    false_positives = [(o, lab.candidate) for o, lab in labelled if lab.said == FALSE_POSITIVE.value][-MAX_MEMORY:]
    rules = RegionRules(default=spec.threshold,
                        thresholds={c: t.threshold for c, t in thresholds.items() if t.calibrated},
                        corrections={c: b.delta for c, b in corrections.items() if b.applied})
    if len(false_positives) >= rules.min_neighbours:
        reals = [(o, lab.candidate) for o, lab in labelled if lab.real][-MAX_MEMORY:]
        rules.negatives, rules.positives = crops.many(false_positives), crops.many(reals)
    learned = {
        "default_threshold": spec.threshold, "candidate_floor": CANDIDATE_FLOOR,
        "thresholds": {c: dataclasses.asdict(t) for c, t in thresholds.items()},
        "box_corrections": {c: dataclasses.asdict(b) for c, b in corrections.items()},
        "suppression": {"active": rules.suppresses, "false_positives_judged": len(false_positives),
                        "false_positives": len(rules.negatives),
                        "real": len(rules.positives), "max_distance": rules.max_distance,
                        "min_neighbours": rules.min_neighbours},
        "recovered_missed": sum(1 for _, lab in labelled if lab.said == NOT_DETECTED.value),
        "unreachable_missed": sum(len(o.unreachable) for o in train),
    }
    return rules, learned


def nothing_learned(rules: RegionRules, learned: dict[str, Any]) -> str | None:
    """Why the rules are the base version's own, or None when they change something."""
    if rules.thresholds or rules.corrections or rules.suppresses:
        return None
    reasons = [f"threshold of {c}: {t['reason']}" for c, t in learned["thresholds"].items()] or ["no judged detections"]
    reasons += [f"box correction of {c}: {b['reason']}" for c, b in learned["box_corrections"].items()]
    reasons.append(f"suppression: {learned['suppression']['false_positives_judged']} false positives judged, "
                   f"fewer than {rules.min_neighbours}")
    return "nothing to learn yet: " + "; ".join(reasons)


def replay(rules: RegionRules, outputs: Sequence[JudgedOutput], crops: Crops) -> list[JudgedRegion]:
    """What the feedback would have said about the regions ``rules`` show on these outputs."""
    judged = []
    for o in outputs:
        shown = {c.id: box for c, box in rules.apply([lab.candidate for lab in o.labelled], crops.of(o))}
        for lab in o.labelled:
            c, box = lab.candidate, shown.get(lab.candidate.id)
            if lab.real and box is None:
                judged.append(JudgedRegion(c.concept, NOT_DETECTED, None, lab.truth, None, c.id))
            elif lab.real and box is not None:  # (a real one without a box went to the branch above)
                feedback = ACCURATE if lab.truth is not None and same(box, lab.truth) else MISPLACED
                judged.append(JudgedRegion(c.concept, feedback, box, lab.truth, c.score, c.id))
            elif box is not None:
                judged.append(JudgedRegion(c.concept, FALSE_POSITIVE, box, None, c.score, c.id))
        judged += [JudgedRegion(concept, NOT_DETECTED, None, box) for concept, box in o.unreachable]
    return judged


# -- the service ------------------------------------------------------------------------------------
class RegionLearning:
    """Trains and loads ``region_calibration`` versions of detection models (see the module docstring)."""

    def __init__(self, db: Database, blobs: BlobStore, runtime: ModelRuntime) -> None:
        self.db = db
        self.blobs = blobs
        self.runtime = runtime

    @staticmethod
    def spec(model: Model) -> DetectorSpec:
        spec = DETECTORS.get(model.runtime)
        if spec is None:
            raise errors.ModelInvalid(
                f"model {model.id!r} ({model.name}) has no detector to calibrate: its base version offers no "
                "scored candidates for region feedback to re-weigh")
        return spec

    def rules_of(self, version: ModelVersion, model: Model) -> RegionRules:
        """A version's rules; a base version's are its detector's threshold alone."""
        if (version.params or {}).get("kind") != REGION_KIND:
            return RegionRules(default=self.spec(model).threshold)
        if not version.artifact_digest:
            raise errors.ModelInvalid(f"model version {version.id} has no artifact")
        return RegionRules.from_bytes(self.blobs.get(version.artifact_digest))

    def load(self, version: ModelVersion, model: Model, base: Predictor) -> Predictor:
        return RegionRulesPredictor(self.spec(model).detect(self.runtime), self.runtime, self.rules_of(version, model))

    def judged_outputs(self, app_id: str, model: Model, spec: DetectorSpec, crops: Crops
                       ) -> tuple[list[JudgedOutput], dict[str, int]]:
        with self.db.session() as s:
            said, n_events, last_seq = statements(s, app_id, model, {spec.concept})
            ids = list(said)
            rows = [row for start in range(0, len(ids), 500)
                    for row in s.execute(select(Output.id, Output.digest, Output.result)
                                         .where(Output.app_id == app_id, Output.model_pk == model.pk,
                                                Output.id.in_(ids[start:start + 500])))]
        detect = spec.detect(self.runtime)
        judged, n_redetected, n_missing = [], 0, 0
        for output_id, digest, result in rows:
            result = result or {}
            candidates = stored_candidates(result)
            try:
                if candidates is None:
                    candidates = redetected(output_id, result, detect(crops.image(digest), CANDIDATE_FLOOR))
                    n_redetected += 1
            except BlobMissing:
                n_missing += 1  # the image is gone (pruned): nothing to re-detect or crop
                continue
            shown = {r["id"]: as_box(r["box"]) for r in result.get("regions") or []}
            judged.append(label(output_id, digest, candidates, shown, said[output_id]))
        return judged, {"events": n_events, "last_seq": last_seq, "outputs": len(judged),
                        "redetected_outputs": n_redetected, "outputs_without_image": n_missing}

    def train(self, version: ModelVersion, model: Model, champion_version: ModelVersion, say: Progress
              ) -> tuple[dict[str, Any], dict[str, Any], str, bool]:
        spec = self.spec(model)
        crops = Crops(self.blobs, self.runtime)
        say("reading region feedback and the candidates of the judged outputs")
        judged, counts = self.judged_outputs(version.app_id, model, spec, crops)
        train = [o for o in judged if not is_held_out(o.digest, salt=version.app_id)]
        held = [o for o in judged if is_held_out(o.digest, salt=version.app_id)]
        say(f"{counts['events']} region feedback events on {len(judged)} outputs: {len(train)} to train, "
            f"{len(held)} held out")
        rules, learned = fit_rules(train, spec, crops)
        why_not = nothing_learned(rules, learned)
        if why_not is not None:
            raise InsufficientData(why_not, last_seq=counts["last_seq"])
        champion = self.rules_of(champion_version, model)
        challenger_report = evaluate_regions(replay(rules, held, crops), n_resamples=100)
        champion_report = evaluate_regions(replay(champion, held, crops), n_resamples=100)
        # The evidence is the held-out judgements, whatever each version shows: a false positive a
        # version hides is a correct answer that region F1 has no record for.
        n_held = sum(len(o.labelled) + len(o.unreachable) for o in held)
        challenger_figures, champion_figures = (
            {k: dataclasses.replace(e, too_few=n_held < MIN_COUNT) for k, e in report.figures().items()}
            for report in (challenger_report, champion_report))
        decision: Decision = decide(champion_figures, challenger_figures, primary=PRIMARY)
        say(decision.reason)
        params = {"kind": REGION_KIND, "promoted": decision.promote, "decision": decision.reason, "learned": learned,
                  "concepts": [{"id": spec.concept, "name": spec.name}],
                  "trained_on": {**counts, "train_outputs": len(train), "held_out_outputs": len(held),
                                 "judged_detections": sum(len(o.labelled) for o in train)}}
        holdout = {"challenger": {k: estimate_json(v) for k, v in challenger_figures.items()},
                   "champion": {k: estimate_json(v) for k, v in champion_figures.items()},
                   "n_judged": n_held}
        return params, {"holdout": holdout}, self.blobs.put(rules.to_bytes()), decision.promote
