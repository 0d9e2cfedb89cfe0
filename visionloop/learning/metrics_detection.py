"""Detections scored against drawn boxes: region precision, recall, F1 and average precision.

Why beside :mod:`visionloop.learning.metrics_regions`: there each region was judged by a user;
here a detector's output on an image is matched against the boxes known to be there (held-out
images of a cross-validation, a benchmark's pasted objects). Matching is greedy, best value first,
at IoU 0.5 per concept; the matches become :class:`JudgedRegion` records (a match ``misplaced``
with its IoU, a detection with no box ``false_positive``, a box with no detection
``not_detected``), so the figures come from the one region evaluation with its intervals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from visionloop.learning.boxes import Box, iou
from visionloop.learning.estimates import Estimate
from visionloop.learning.metrics_regions import IOU_THRESHOLD, JudgedRegion, evaluate_regions
from visionloop.learning.vocabulary import RegionFeedback


@dataclass(frozen=True)
class Scored:
    """A detection to score: its concept, box and value."""

    concept: str
    box: Box
    value: float


def judge(detections: Sequence[Scored], truths: Sequence[tuple[str, Box]],
          iou_threshold: float = IOU_THRESHOLD) -> tuple[list[JudgedRegion], list[tuple[str, float, bool]]]:
    """One image: the judged regions, and (concept, value, true positive?) per detection."""
    free = list(truths)
    judged, ranked = [], []
    for d in sorted(detections, key=lambda d: -d.value):
        best = max((k for k, (c, _) in enumerate(free) if c == d.concept), key=lambda k: iou(d.box, free[k][1]),
                   default=None)
        if best is not None and iou(d.box, free[best][1]) >= iou_threshold:
            judged.append(JudgedRegion(d.concept, RegionFeedback.MISPLACED, d.box, free.pop(best)[1], d.value))
            ranked.append((d.concept, d.value, True))
        else:
            judged.append(JudgedRegion(d.concept, RegionFeedback.FALSE_POSITIVE, d.box, None, d.value))
            ranked.append((d.concept, d.value, False))
    judged += [JudgedRegion(c, RegionFeedback.NOT_DETECTED, None, b) for c, b in free]
    return judged, ranked


def average_precision(ranked: Sequence[tuple[float, bool]], n_truths: int) -> float | None:
    """Area under the precision-recall steps of detections ranked by value (boxes never detected
    count against recall); None without any box."""
    if n_truths == 0:
        return None
    order = sorted(ranked, key=lambda r: -r[0])
    hits = np.array([h for _, h in order], float)
    if not len(hits):
        return 0.0
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / n_truths)


@dataclass(frozen=True)
class DetectionScores:
    precision: Estimate
    recall: Estimate
    f1: Estimate
    ap: float | None  # mean over concepts
    per_concept_ap: dict[str, float | None]
    false_positives: int
    n_images: int

    def figures(self) -> dict[str, Estimate]:
        """As :func:`visionloop.learning.promotion.decide` takes them."""
        return {"f1": self.f1, "precision": self.precision, "recall": self.recall}


def score_detections(detections: Sequence[Sequence[Scored]], truths: Sequence[Sequence[tuple[str, Box]]],
                     *, n_resamples: int = 100) -> DetectionScores:
    """Figures over images: each image's detections against its boxes."""
    judged, ranked = [], []
    for dets, image_truths in zip(detections, truths, strict=True):
        j, r = judge(dets, image_truths)
        judged += j
        ranked += r
    report = evaluate_regions(judged, n_resamples=n_resamples)
    concepts = sorted({c for image in truths for c, _ in image})
    aps = {c: average_precision([(v, h) for rc, v, h in ranked if rc == c],
                                sum(tc == c for image in truths for tc, _ in image)) for c in concepts}
    defined = [a for a in aps.values() if a is not None]
    o = report.overall
    return DetectionScores(o.precision, o.recall, o.f1, float(np.mean(defined)) if defined else None, aps,
                           o.fp, len(truths))
