"""Region models learn from judged detections: thresholds, box corrections, remembered mistakes.

Three small corrections a region version can carry, each applied only on enough evidence:

- a per-concept score threshold chosen on detections judged ``accurate`` (positive) versus
  ``false_positive`` (negative), maximising F1 or reaching a target precision. Only detections
  that were shown get judged, so the data cannot justify a threshold below the lowest judged
  score; the choice is always among judged scores;
- a per-concept box correction: the mean shift of each side relative to the box size, learned
  from ``misplaced`` pairs *and* ``accurate`` ones (zero shift — the correction is applied to every
  box, so it must not damage the boxes that were right), kept only when it raises the mean IoU in
  leave-one-out;
- suppression of repeated false positives: a new detection whose crop embedding is close to at
  least ``min_neighbours`` crops marked ``false_positive`` is dropped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import precision_recall_curve

from visionloop.learning.boxes import Box, as_box, iou
from visionloop.learning.metrics_regions import JudgedRegion
from visionloop.learning.vocabulary import RegionFeedback

MIN_JUDGED = 30
MIN_PAIRS = 10


@dataclass(frozen=True)
class Threshold:
    concept: str
    threshold: float
    calibrated: bool  # False: the default was kept (see ``reason``)
    n_judged: int
    precision: float | None  # on the judged detections, at ``threshold``
    recall: float | None
    f1: float | None
    reason: str


def _choose(concept: str, scores: np.ndarray, accurate: np.ndarray, default: float,
            min_judged: int, target_precision: float | None) -> Threshold:
    n = len(scores)
    n_pos = int(accurate.sum())
    if n < min_judged:
        return Threshold(concept, default, False, n, None, None, None,
                         f"{n} judged detections, fewer than {min_judged}")
    if n_pos == 0:
        # Every judged detection was wrong: raise the bar above all of them.
        above = float(np.nextafter(scores.max(), math.inf))
        return Threshold(concept, above, True, n, 0.0, 0.0, 0.0, f"all {n} judged detections were false positives")
    if n_pos == n:
        return Threshold(concept, default, False, n, 1.0, 1.0, 1.0, "no false positives judged")
    precision, recall, thresholds = precision_recall_curve(accurate, scores)
    precision, recall = precision[:-1], recall[:-1]  # drop the (1, 0) end point without a threshold
    f1 = np.zeros_like(precision)
    np.divide(2 * precision * recall, precision + recall, out=f1, where=(precision + recall) > 0)
    if target_precision is None:
        k = len(f1) - 1 - int(np.argmax(f1[::-1]))  # best F1; on ties the higher threshold
        reason = "maximum F1 on the judged detections"
    else:
        reaching = np.flatnonzero(precision >= target_precision)
        if reaching.size == 0:
            return Threshold(concept, default, False, n, None, None, None,
                             f"no threshold reaches precision {target_precision}")
        k = int(reaching[0])  # the lowest threshold that reaches it keeps the most recall
        reason = f"lowest threshold with precision >= {target_precision}"
    return Threshold(concept, float(thresholds[k]), True, n, float(precision[k]), float(recall[k]),
                     float(f1[k]), reason)


def calibrate_thresholds(
    judged: Iterable[tuple[str, float, bool]],
    *,
    default: float = 0.5,
    min_judged: int = MIN_JUDGED,
    target_precision: float | None = None,
) -> dict[str, Threshold]:
    """Per concept, a threshold from ``(concept, score, accurate)`` judged detections.

    A detection is kept when ``score >= threshold``. Concepts with fewer than ``min_judged``
    judged detections keep ``default``.
    """
    by_concept: dict[str, list[tuple[float, bool]]] = {}
    for concept, score, accurate in judged:
        by_concept.setdefault(concept, []).append((float(score), bool(accurate)))
    out = {}
    for concept in sorted(by_concept):
        scores = np.array([s for s, _ in by_concept[concept]])
        is_accurate = np.array([a for _, a in by_concept[concept]], dtype=int)
        out[concept] = _choose(concept, scores, is_accurate, default, min_judged, target_precision)
    return out


def _relative_shift(predicted: Box, corrected: Box) -> np.ndarray | None:
    h, w = predicted[2] - predicted[0], predicted[3] - predicted[1]
    if h <= 0 or w <= 0:
        return None
    shift: np.ndarray = (np.array(corrected) - np.array(predicted)) / np.array([h, w, h, w])  # stubs: Any
    return shift


def shift_box(box: Sequence[float], delta: Sequence[float]) -> Box:
    """Move each side by ``delta`` times the box's height/width, clipped to the image."""
    original = as_box(box)
    h, w = original[2] - original[0], original[3] - original[1]
    moved = np.clip(np.array(original) + np.array(delta) * np.array([h, w, h, w]), 0.0, 1.0)
    if moved[0] >= moved[2] or moved[1] >= moved[3]:
        return original  # a correction that would empty the box is not applied
    return Box(float(moved[0]), float(moved[1]), float(moved[2]), float(moved[3]))


@dataclass(frozen=True)
class BoxCorrection:
    concept: str
    delta: tuple[float, float, float, float]  # (top, left, bottom, right) shift / box height, width
    applied: bool
    n_pairs: int  # accurate + misplaced pairs it was fitted on
    n_misplaced: int
    iou_before: float | None  # mean IoU of the predicted boxes with the right ones
    iou_after: float | None  # the same after the leave-one-out correction
    reason: str

    def apply(self, box: Sequence[float]) -> Box:
        return shift_box(box, self.delta) if self.applied else as_box(box)


def fit_box_correction(concept: str, pairs: Sequence[tuple[Sequence[float], Sequence[float]]], *,
                       min_misplaced: int = MIN_PAIRS, min_gain: float = 0.0) -> BoxCorrection:
    """The mean relative shift from predicted to corrected boxes, if leave-one-out says it helps.

    ``pairs`` are (predicted, corrected) boxes; an ``accurate`` detection is a pair of equal boxes.
    """
    boxes = [(as_box(p), as_box(c)) for p, c in pairs]
    usable = [(p, c, s) for p, c in boxes if (s := _relative_shift(p, c)) is not None]
    n_misplaced = sum(1 for p, c, _ in usable if p != c)
    if len(usable) < 2 or n_misplaced < min_misplaced:
        return BoxCorrection(concept, (0.0, 0.0, 0.0, 0.0), False, len(usable), n_misplaced, None, None,
                             f"{n_misplaced} misplaced boxes, fewer than {min_misplaced}")
    shifts = np.array([s for _, _, s in usable])
    total = shifts.sum(axis=0)
    before = np.mean([iou(p, c) for p, c, _ in usable])
    after = np.mean([iou(shift_box(p, (total - s) / (len(usable) - 1)), c) for p, c, s in usable])
    top, left, bottom, right = (float(x) for x in total / len(usable))
    delta = (top, left, bottom, right)
    applied = after > before + min_gain
    reason = (f"leave-one-out mean IoU {before:.3f} -> {after:.3f}" +
              ("" if applied else ": no gain, not applied"))
    return BoxCorrection(concept, delta, applied, len(usable), n_misplaced, float(before), float(after),
                         reason)


def box_pairs(judged: Iterable[JudgedRegion]) -> dict[str, list[tuple[Box, Box]]]:
    """(predicted, corrected) pairs per concept: misplaced regions, and accurate ones as equal boxes."""
    out: dict[str, list[tuple[Box, Box]]] = {}
    for region in judged:
        if region.feedback is RegionFeedback.MISPLACED:
            pair = (as_box(region.predicted), as_box(region.corrected))
        elif region.feedback is RegionFeedback.ACCURATE and region.predicted is not None:
            pair = (as_box(region.predicted), as_box(region.predicted))
        else:
            continue
        out.setdefault(region.concept, []).append(pair)
    return out


def fit_box_corrections(pairs_by_concept: Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]],
                        *, min_misplaced: int = MIN_PAIRS, min_gain: float = 0.0) -> dict[str, BoxCorrection]:
    return {c: fit_box_correction(c, pairs_by_concept[c], min_misplaced=min_misplaced, min_gain=min_gain)
            for c in sorted(pairs_by_concept)}


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: np.ndarray = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)  # stubs: Any
    return unit


def suppression_mask(
    candidates: np.ndarray,
    negatives: np.ndarray,
    *,
    max_distance: float = 0.1,
    min_neighbours: int = 2,
    positives: np.ndarray | None = None,
) -> np.ndarray:
    """True for each candidate crop embedding to drop as a repeat of remembered false positives.

    A candidate is dropped when at least ``min_neighbours`` false-positive crops lie within cosine
    distance ``max_distance`` of it — and, if ``positives`` (crops judged accurate) are given, more
    false positives than accurate crops lie there, so a concept's true look is never suppressed.
    Zero vectors match nothing.
    """
    candidates = np.atleast_2d(np.asarray(candidates, dtype=np.float64))
    negatives = np.asarray(negatives, dtype=np.float64)
    if candidates.size == 0 or negatives.size == 0:
        return np.zeros(len(candidates) if candidates.size else 0, dtype=bool)
    if min_neighbours < 1:
        raise ValueError(f"min_neighbours must be >= 1, got {min_neighbours}")
    unit = _unit_rows(candidates)
    candidate_ok = np.linalg.norm(unit, axis=1) > 0

    def neighbours(vectors: np.ndarray) -> np.ndarray:
        vectors = _unit_rows(np.atleast_2d(vectors))
        close = (1.0 - unit @ vectors.T) <= max_distance
        close &= (np.linalg.norm(vectors, axis=1) > 0)[None, :] & candidate_ok[:, None]
        counts: np.ndarray = close.sum(axis=1)  # numpy's stubs: Any
        return counts

    n_negative = neighbours(negatives)
    drop = n_negative >= min_neighbours
    if positives is not None and np.asarray(positives).size:
        drop &= n_negative > neighbours(np.asarray(positives, dtype=np.float64))
    return drop
