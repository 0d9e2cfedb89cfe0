"""The box detector on feature maps made by hand: an object is a patch of cells with its own
direction in feature space, a distractor another; the scores against boxes by hand-counted matches."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.learning.boxes import iou
from visionloop.learning.detector import BoxDetector, from_bytes, to_bytes
from visionloop.learning.metrics_detection import Scored, average_precision, judge, score_detections

GRID, CHANNELS = 20, 16


def make_map(rng: np.random.Generator, objects: list[tuple[int, int, int, int]]) -> np.ndarray:
    """Noise, then each object (channel, top, left, side in cells) adds its channel over its cells."""
    m = rng.normal(0, 0.3, (GRID, GRID, CHANNELS)).astype(np.float32)
    for channel, top, left, side in objects:
        m[top:top + side, left:left + side, channel] += 3.0
    return m


def dataset(rng: np.random.Generator, n: int) -> tuple[list[np.ndarray], list[list[tuple[str, tuple]]]]:
    maps, truths = [], []
    for k in range(n):
        side = int(rng.integers(4, 8))
        top, left = (int(v) for v in rng.integers(0, GRID - side, 2))
        objects = [(0, top, left, side)]
        if k % 2:  # a distractor in the other half
            objects.append((1, (top + 10) % (GRID - 4), (left + 10) % (GRID - 4), 4))
        maps.append(make_map(rng, objects))
        truths.append([("thing", (top / GRID, left / GRID, (top + side) / GRID, (left + side) / GRID))])
    return maps, truths


def test_the_detector_finds_the_learned_object_and_not_the_distractor() -> None:
    rng = np.random.default_rng(0)
    maps, truths = dataset(rng, 24)
    detector = BoxDetector(n_components=8).fit(maps, truths)
    assert detector.oof_evaluated_ and len(detector.oof_) == 24
    test_maps, test_truths = dataset(rng, 8)
    found = detector.predict(test_maps)
    hits = sum(any(d.concept == "thing" and iou(d.box, t[0][1]) >= 0.5 for d in dets) for dets, t in zip(found, test_truths))
    assert hits >= 7
    assert sum(len(dets) for dets in found) <= 9  # at most one false alarm
    assert all(0.0 <= d.value <= 1.0 for dets in found for d in dets)


def test_a_saved_detector_predicts_the_same() -> None:
    rng = np.random.default_rng(1)
    maps, truths = dataset(rng, 12)
    detector = BoxDetector(n_components=8).fit(maps, truths)
    again = from_bytes(to_bytes(detector))
    assert again.predict(maps[:3]) == detector.predict(maps[:3])
    assert again.get_params() == detector.get_params()


def test_fit_refuses_what_it_cannot_learn_from() -> None:
    with pytest.raises(ValueError, match="no boxes"):
        BoxDetector().fit([np.zeros((GRID, GRID, CHANNELS))], [[]])
    with pytest.raises(ValueError, match="one entry per image"):
        BoxDetector().fit([np.zeros((GRID, GRID, CHANNELS))], [])


def test_detections_are_matched_best_first_at_iou_half() -> None:
    truths = [("a", (0.0, 0.0, 0.5, 0.5)), ("b", (0.5, 0.5, 1.0, 1.0))]
    dets = [Scored("a", (0.0, 0.0, 0.5, 0.45), 0.9),  # IoU 0.9: a hit
            Scored("a", (0.0, 0.0, 0.5, 0.5), 0.8),  # the same box again: a false positive
            Scored("b", (0.0, 0.5, 0.5, 1.0), 0.7)]  # nowhere near b: a false positive, b missed
    judged, ranked = judge(dets, truths)
    assert [(j.concept, j.feedback.value) for j in judged] == [
        ("a", "misplaced"), ("a", "false_positive"), ("b", "false_positive"), ("b", "not_detected")]
    assert ranked == [("a", 0.9, True), ("a", 0.8, False), ("b", 0.7, False)]
    scores = score_detections([dets, []], [truths, []], n_resamples=10)
    assert (scores.precision.value, scores.recall.value) == (pytest.approx(1 / 3), 0.5)
    assert scores.per_concept_ap == {"a": 1.0, "b": 0.0} and scores.false_positives == 2


def test_average_precision_counts_boxes_never_detected() -> None:
    assert average_precision([(0.9, True), (0.5, False), (0.4, True)], n_truths=4) == pytest.approx((1 + 2 / 3) / 4)
    assert average_precision([], n_truths=2) == 0.0
    assert average_precision([(0.3, False)], n_truths=0) is None
