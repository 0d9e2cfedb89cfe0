"""How well a region model's detections match what end users said about them.

Region feedback already says whether each detection was right, so there is no matching search to
do: each judged region becomes FiftyOne-style :class:`Match` records by one rule (:func:`match`):

============== ============================================================
feedback       match records
============== ============================================================
accurate       one true positive, IoU 1
misplaced      IoU(predicted, corrected) >= ``iou_threshold``: one true positive with that IoU;
               below: a false positive (the predicted box) and a false negative (the user's box)
not_detected   one false negative
false_positive one false positive
============== ============================================================

Unmatched sides carry the :data:`MISSING` label, so precision, recall and F1 come straight from
``sklearn.metrics`` over (ground-truth label, predicted label) pairs, as in FiftyOne.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from visionloop.learning.boxes import Box, as_box, iou
from visionloop.learning.estimates import CONFIDENCE, N_RESAMPLES, Estimate, defined, interval, ratio, resample_counts
from visionloop.learning.vocabulary import RegionFeedback

MISSING = "(none)"
IOU_THRESHOLD = 0.5
MIN_COUNT = 10


@dataclass(frozen=True)
class JudgedRegion:
    """One region of a feedback event about an output of the evaluated version."""

    concept: str
    feedback: RegionFeedback
    predicted: Box | None = None  # the version's box (not for not_detected)
    corrected: Box | None = None  # the end user's box (misplaced and not_detected)
    score: float | None = None
    region_id: str | None = None

    def __post_init__(self) -> None:
        feedback = RegionFeedback.parse(self.feedback)
        object.__setattr__(self, "feedback", feedback)
        if feedback is RegionFeedback.MISPLACED and (self.predicted is None or self.corrected is None):
            raise ValueError("a misplaced region needs the predicted and the corrected box")
        if feedback is RegionFeedback.NOT_DETECTED and self.corrected is None:
            raise ValueError("a not_detected region needs the corrected box")


class Match(NamedTuple):
    gt_label: str  # MISSING for a false positive
    pred_label: str  # MISSING for a false negative
    iou: float | None  # only for matched pairs
    confidence: float | None
    gt_id: str | None
    pred_id: str | None
    feedback: RegionFeedback


@dataclass(frozen=True)
class RegionMetrics:
    concept: str  # or "all" for the micro-averaged figures
    tp: int
    fp: int
    fn: int
    precision: Estimate
    recall: Estimate
    f1: Estimate
    mean_iou_misplaced: float | None
    n_misplaced: int
    n_judged: int
    too_few: bool


@dataclass(frozen=True)
class RegionReport:
    iou_threshold: float
    concepts: dict[str, RegionMetrics]
    overall: RegionMetrics
    matches: list[Match]
    confusion_labels: list[str]  # the concepts, then MISSING
    confusion: np.ndarray  # rows ground truth, columns prediction

    def figures(self) -> dict[str, Estimate]:
        """The overall figures by name, as :func:`visionloop.learning.promotion.decide` takes them."""
        return {"f1": self.overall.f1, "precision": self.overall.precision, "recall": self.overall.recall}


def match(region: JudgedRegion, iou_threshold: float = IOU_THRESHOLD) -> list[Match]:
    """The match records of one judged region (the rule in the module docstring)."""
    c, rid, score = region.concept, region.region_id, region.score
    if region.feedback is RegionFeedback.ACCURATE:
        return [Match(c, c, 1.0, score, rid, rid, region.feedback)]
    if region.feedback is RegionFeedback.FALSE_POSITIVE:
        return [Match(MISSING, c, None, score, None, rid, region.feedback)]
    if region.feedback is RegionFeedback.NOT_DETECTED:
        return [Match(c, MISSING, None, None, rid, None, region.feedback)]
    overlap = iou(as_box(region.predicted), as_box(region.corrected))
    if overlap >= iou_threshold:
        return [Match(c, c, overlap, score, rid, rid, region.feedback)]
    return [Match(MISSING, c, None, score, None, rid, region.feedback),
            Match(c, MISSING, None, None, rid, None, region.feedback)]


def _counts(matches: Sequence[Match]) -> np.ndarray:
    """(tp, fp, fn) summed over the match records of one judged region."""
    counts: np.ndarray = np.array([(m.gt_label == m.pred_label, m.gt_label == MISSING, m.pred_label == MISSING)
                                   for m in matches], dtype=float).sum(axis=0)  # numpy's stubs say Any
    return counts


def _metrics(concept: str, judged: list[JudgedRegion], per_region: list[list[Match]],
             figures: tuple[float, float, float], iou_threshold: float, min_count: int,
             n_resamples: int, confidence: float, seed: int) -> RegionMetrics:
    only = None if concept == "all" else concept
    chosen = [k for k, r in enumerate(judged) if only is None or r.concept == only]
    units = np.array([_counts(per_region[k]) for k in chosen]).reshape(-1, 3)
    tp, fp, fn = units.sum(axis=0)
    boot = resample_counts(len(chosen), n_resamples, seed) @ units  # (resamples, 3)
    btp, bfp, bfn = boot[:, 0], boot[:, 1], boot[:, 2]
    too_few = len(chosen) < min_count

    def estimate(value: float, samples: np.ndarray) -> Estimate:
        point = defined(value)
        low, high = interval(samples, confidence) if point is not None else (None, None)
        return Estimate(point, low, high, n=len(chosen), too_few=too_few)

    misplaced = [iou(as_box(judged[k].predicted), as_box(judged[k].corrected)) for k in chosen
                 if judged[k].feedback is RegionFeedback.MISPLACED]
    p, r, f = figures
    return RegionMetrics(
        concept, int(tp), int(fp), int(fn),
        precision=estimate(p, ratio(btp, btp + bfp, np.nan)),
        recall=estimate(r, ratio(btp, btp + bfn, np.nan)),
        f1=estimate(f, ratio(2 * btp, 2 * btp + bfp + bfn, np.nan)),
        mean_iou_misplaced=float(np.mean(misplaced)) if misplaced else None,
        n_misplaced=len(misplaced), n_judged=len(chosen), too_few=too_few,
    )


def evaluate_regions(
    judged: Iterable[JudgedRegion],
    *,
    iou_threshold: float = IOU_THRESHOLD,
    min_count: int = MIN_COUNT,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> RegionReport:
    """Per-concept and overall (micro) TP/FP/FN, precision, recall, F1 and misplaced IoU.

    Intervals resample judged regions; ``too_few`` flags fewer than ``min_count`` of them.
    """
    judged = list(judged)
    per_region = [match(r, iou_threshold) for r in judged]
    matches = [m for ms in per_region for m in ms]
    concepts = sorted({r.concept for r in judged})
    gt = [m.gt_label for m in matches]
    pred = [m.pred_label for m in matches]
    if concepts:
        p, r, f, _ = precision_recall_fscore_support(gt, pred, labels=concepts, average=None,
                                                     zero_division=np.nan)
        mp, mr, mf, _ = precision_recall_fscore_support(gt, pred, labels=concepts, average="micro",
                                                        zero_division=np.nan)
        confusion = confusion_matrix(gt, pred, labels=concepts + [MISSING])
    else:
        p = r = f = np.zeros(0)
        mp = mr = mf = np.nan  # nothing judged: no figure
        confusion = np.zeros((1, 1), dtype=int)
    options = (iou_threshold, min_count, n_resamples, confidence, seed)
    per_concept = {
        c: _metrics(c, judged, per_region, (p[k], r[k], f[k]), *options) for k, c in enumerate(concepts)
    }
    overall = _metrics("all", judged, per_region, (mp, mr, mf), *options)
    return RegionReport(iou_threshold, per_concept, overall, matches, concepts + [MISSING], confusion)
