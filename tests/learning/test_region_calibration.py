"""Region calibration: thresholds on judged detections, box corrections, false-positive memory."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.learning.metrics_regions import JudgedRegion
from visionloop.learning.region_calibration import (
    box_pairs,
    calibrate_thresholds,
    fit_box_correction,
    fit_box_corrections,
    shift_box,
    suppression_mask,
)
from visionloop.learning.vocabulary import RegionFeedback

# 30 judged "dog" detections scored .51 ... .80: the ten lowest were false positives.
JUDGED = [("dog", round(0.51 + k / 100, 2), k >= 10) for k in range(30)]


def test_threshold_maximising_f1() -> None:
    t = calibrate_thresholds(JUDGED)["dog"]
    assert t.calibrated and t.threshold == 0.61
    assert (t.precision, t.recall, t.f1, t.n_judged) == (1.0, 1.0, 1.0, 30)


def test_threshold_for_a_target_precision() -> None:
    t = calibrate_thresholds(JUDGED, target_precision=0.8)["dog"]
    # Keeping scores >= .56 keeps 25 detections, 20 of them accurate.
    assert (t.threshold, t.precision, t.recall) == (0.56, 0.8, 1.0)
    unreachable = calibrate_thresholds([(c, s, a and s > 0.79) for c, s, a in JUDGED], target_precision=1.0,
                                       min_judged=30)["dog"]
    assert unreachable.calibrated  # .80 alone is accurate: precision 1 reached at the top
    t = calibrate_thresholds([("cat", 0.9, k % 2 == 0) for k in range(30)], target_precision=0.9)["cat"]
    assert not t.calibrated and t.threshold == 0.5 and "no threshold reaches" in t.reason


def test_ties_in_f1_choose_the_higher_threshold() -> None:
    # F1 = 2TP / (2TP + FP + FN): at .5 it is 6/9, at .8 it is 4/6 — a tie; fewer false alarms win.
    judged = [("dog", s, a) for s, a in [(0.5, True), (0.6, False), (0.7, False), (0.8, True),
                                         (0.9, False), (1.0, True)]]
    t = calibrate_thresholds(judged, min_judged=6)["dog"]
    assert (t.threshold, t.f1, t.precision) == (0.8, pytest.approx(2 / 3), pytest.approx(2 / 3))


def test_too_few_judged_keeps_the_default() -> None:
    t = calibrate_thresholds(JUDGED[:29], default=0.4)["dog"]
    assert not t.calibrated and t.threshold == 0.4 and t.reason == "29 judged detections, fewer than 30"
    assert calibrate_thresholds([]) == {}


def test_one_sided_evidence() -> None:
    wrong = calibrate_thresholds([("dog", s, False) for _, s, _ in JUDGED])["dog"]
    assert wrong.calibrated and wrong.threshold > 0.80 and "all 30" in wrong.reason
    right = calibrate_thresholds([("dog", s, True) for _, s, _ in JUDGED])["dog"]
    assert not right.calibrated and right.threshold == 0.5


def boxes(n: int, seed: int = 0) -> list[tuple[float, float, float, float]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        top, left = rng.uniform(0.05, 0.4, 2)
        h, w = rng.uniform(0.1, 0.4, 2)
        out.append((top, left, top + h, left + w))
    return out


def test_a_consistent_offset_is_learned_and_applied() -> None:
    # The model draws every box 10% of its height too high.
    pairs = [(b, shift_box(b, (0.1, 0, 0.1, 0))) for b in boxes(12)]
    correction = fit_box_correction("dog", pairs)
    assert correction.applied and correction.n_misplaced == 12
    assert correction.delta == pytest.approx((0.1, 0, 0.1, 0))
    assert correction.iou_after == pytest.approx(1.0) and correction.iou_before < 0.9
    assert correction.apply((0.2, 0.2, 0.4, 0.6)) == pytest.approx((0.22, 0.2, 0.42, 0.6))


def test_noise_and_accurate_boxes_give_no_correction() -> None:
    rng = np.random.default_rng(1)
    misplaced = [(b, shift_box(b, rng.normal(0, 0.1, 4))) for b in boxes(12, seed=2)]
    accurate = [(b, b) for b in boxes(40, seed=3)]
    correction = fit_box_correction("dog", misplaced + accurate)
    assert not correction.applied and correction.iou_after <= correction.iou_before
    assert correction.apply((0.2, 0.2, 0.4, 0.6)) == (0.2, 0.2, 0.4, 0.6)


def test_too_few_misplaced_pairs() -> None:
    pairs = [(b, shift_box(b, (0.1, 0, 0.1, 0))) for b in boxes(9)] + [(b, b) for b in boxes(30)]
    correction = fit_box_correction("dog", pairs)
    assert not correction.applied and correction.reason == "9 misplaced boxes, fewer than 10"
    assert fit_box_correction("dog", []).n_pairs == 0


def test_shift_box_clips_and_never_empties() -> None:
    assert shift_box((0.9, 0.1, 1.0, 0.2), (0.5, 0, 0.5, 0)) == pytest.approx((0.95, 0.1, 1.0, 0.2))
    assert shift_box((0.1, 0.1, 0.2, 0.2), (2, 0, 0, 0)) == (0.1, 0.1, 0.2, 0.2)


def test_box_pairs_from_judged_regions() -> None:
    F = RegionFeedback
    judged = [
        JudgedRegion("dog", F.ACCURATE, (0.1, 0.1, 0.2, 0.2)),
        JudgedRegion("dog", F.MISPLACED, (0.1, 0.1, 0.2, 0.2), (0.1, 0.1, 0.3, 0.3)),
        JudgedRegion("dog", F.FALSE_POSITIVE, (0.5, 0.5, 0.6, 0.6)),
        JudgedRegion("cat", F.NOT_DETECTED, corrected=(0.5, 0.5, 0.6, 0.6)),
    ]
    assert box_pairs(judged) == {"dog": [((0.1, 0.1, 0.2, 0.2), (0.1, 0.1, 0.2, 0.2)),
                                         ((0.1, 0.1, 0.2, 0.2), (0.1, 0.1, 0.3, 0.3))]}
    assert list(fit_box_corrections(box_pairs(judged))) == ["dog"]


def test_repeated_false_positives_are_suppressed() -> None:
    negatives = np.array([[1.0, 0.0], [1.0, 0.05], [0.0, 1.0]])
    candidates = np.array([[1.0, 0.02], [0.0, 1.0], [-1.0, 0.0], [0.0, 0.0]])
    assert suppression_mask(candidates, negatives).tolist() == [True, False, False, False]
    assert suppression_mask(candidates, negatives, min_neighbours=1).tolist() == [True, True, False, False]
    assert not suppression_mask(candidates, negatives, max_distance=1e-6).any()
    # Accurate crops of the same look protect it.
    protected = suppression_mask(candidates, negatives, positives=np.array([[1, 0.01], [1, 0.03]]))
    assert protected.tolist() == [False, False, False, False]


def test_suppression_with_nothing_remembered() -> None:
    assert suppression_mask(np.ones((2, 3)), np.zeros((0, 3))).tolist() == [False, False]
    assert suppression_mask(np.zeros((0, 3)), np.ones((2, 3))).tolist() == []
    with pytest.raises(ValueError):
        suppression_mask(np.ones((1, 2)), np.ones((1, 2)), min_neighbours=0)
