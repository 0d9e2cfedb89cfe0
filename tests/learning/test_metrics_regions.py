"""Region metrics from judged regions: one match rule, exact counts and confusion matrix."""

from __future__ import annotations

import pytest

from visionloop.learning.metrics_regions import (
    MISSING,
    JudgedRegion,
    Match,
    evaluate_regions,
    match,
)
from visionloop.learning.vocabulary import RegionFeedback

F = RegionFeedback
J = JudgedRegion
FIXTURE = [
    J("dog", F.ACCURATE, (0.1, 0.1, 0.4, 0.4), score=0.9, region_id="r1"),
    J("dog", F.MISPLACED, (0, 0, 0.5, 0.5), (0, 0, 0.5, 0.4), score=0.8, region_id="r2"),  # IoU .8
    J("dog", F.MISPLACED, (0, 0, 0.2, 0.2), (0.1, 0.1, 0.3, 0.3), score=0.7, region_id="r3"),  # 1/7
    J("dog", F.NOT_DETECTED, corrected=(0.5, 0.5, 0.9, 0.9), region_id="r4"),
    J("dog", F.FALSE_POSITIVE, (0.6, 0.6, 0.7, 0.7), score=0.6, region_id="r5"),
    J("cat", F.ACCURATE, (0.2, 0.2, 0.3, 0.3), score=0.95, region_id="r6"),
    J("cat", F.FALSE_POSITIVE, (0.2, 0.5, 0.3, 0.6), score=0.55, region_id="r7"),
]


def test_one_rule_for_each_kind_of_feedback() -> None:
    assert match(FIXTURE[0]) == [Match("dog", "dog", 1.0, 0.9, "r1", "r1", F.ACCURATE)]
    assert match(FIXTURE[1]) == [Match("dog", "dog", pytest.approx(0.8), 0.8, "r2", "r2", F.MISPLACED)]
    assert match(FIXTURE[2]) == [Match(MISSING, "dog", None, 0.7, None, "r3", F.MISPLACED),
                                 Match("dog", MISSING, None, None, "r3", None, F.MISPLACED)]
    assert match(FIXTURE[3]) == [Match("dog", MISSING, None, None, "r4", None, F.NOT_DETECTED)]
    assert match(FIXTURE[4]) == [Match(MISSING, "dog", None, 0.6, None, "r5", F.FALSE_POSITIVE)]
    # The threshold decides whether a misplaced box still counts as found.
    assert [m.pred_label for m in match(FIXTURE[1], iou_threshold=0.9)] == ["dog", MISSING]


def test_hand_computed_counts_and_figures() -> None:
    report = evaluate_regions(FIXTURE, min_count=1)
    dog, cat, overall = report.concepts["dog"], report.concepts["cat"], report.overall
    assert (dog.tp, dog.fp, dog.fn) == (2, 2, 2)
    assert (dog.precision.value, dog.recall.value, dog.f1.value) == (0.5, 0.5, 0.5)
    assert dog.mean_iou_misplaced == pytest.approx((0.8 + 1 / 7) / 2)
    assert (dog.n_misplaced, dog.n_judged) == (2, 5)
    assert (cat.tp, cat.fp, cat.fn) == (1, 1, 0)
    assert (cat.precision.value, cat.recall.value) == (0.5, 1.0)
    assert cat.f1.value == pytest.approx(2 / 3) and cat.mean_iou_misplaced is None
    assert (overall.tp, overall.fp, overall.fn) == (3, 3, 2)
    assert (overall.precision.value, overall.recall.value) == (0.5, 0.6)
    assert overall.f1.value == pytest.approx(6 / 11)


def test_exact_confusion_matrix() -> None:
    report = evaluate_regions(FIXTURE)
    assert report.confusion_labels == ["cat", "dog", MISSING]
    assert report.confusion.tolist() == [
        [1, 0, 0],  # cat found
        [0, 2, 2],  # dog: two found, r3 and r4 missed
        [1, 2, 0],  # false positives: r7 (cat), r3 and r5 (dog)
    ]


def test_empty() -> None:
    report = evaluate_regions([])
    assert report.concepts == {} and report.matches == []
    assert (report.overall.tp, report.overall.fp, report.overall.fn) == (0, 0, 0)
    assert report.overall.f1.value is None and report.overall.f1.low is None and report.overall.too_few


def test_only_misses_give_no_precision_and_zero_recall() -> None:
    """Nothing was predicted, so precision is undefined (None, not 0.0); what was there was missed."""
    report = evaluate_regions([J("dog", F.NOT_DETECTED, corrected=(0, 0, 1, 1))])
    dog = report.concepts["dog"]
    assert (dog.tp, dog.fp, dog.fn, dog.precision.value, dog.recall.value, dog.f1.value) == (0, 0, 1, None, 0.0, 0.0)
    assert dog.precision.low is None and dog.precision.high is None


def test_too_few_and_interval() -> None:
    many = FIXTURE * 5
    report = evaluate_regions(many, min_count=11)  # dog: 25 judged, cat: 10
    assert not report.concepts["dog"].too_few and report.concepts["cat"].too_few
    f1 = report.overall.f1
    assert f1.n == 35 and f1.low <= f1.value <= f1.high


def test_wire_values_are_parsed_and_missing_feedback_means_accurate() -> None:
    assert RegionFeedback.parse(None) is F.ACCURATE
    assert RegionFeedback.parse(3) is F.FALSE_POSITIVE
    assert J("dog", "misplaced", (0, 0, 1, 1), (0, 0, 1, 1)).feedback is F.MISPLACED
    with pytest.raises(ValueError, match="corrected"):
        J("dog", F.MISPLACED, (0, 0, 1, 1))
    with pytest.raises(ValueError, match="corrected"):
        J("dog", F.NOT_DETECTED)
    with pytest.raises(ValueError):
        RegionFeedback.parse("wrong")
