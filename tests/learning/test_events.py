"""Adapters from the stored ``normalized`` feedback bodies."""

from __future__ import annotations

from visionloop.learning.events import concept_votes, image_key, one_per_region, region_judgements
from visionloop.learning.labels import Vote, rebuild_labels
from visionloop.learning.metrics_regions import JudgedRegion, evaluate_regions
from visionloop.learning.vocabulary import RegionFeedback

CONCEPTS = {"kind": "concepts", "input_id": "in1", "digest": "sha-1",
            "concepts": [{"id": "dog", "value": 1.0}, {"id": "cat", "value": 0.0}]}


def test_concept_votes() -> None:
    assert concept_votes(CONCEPTS, "alice") == [Vote(("sha-1", "dog"), "alice", True),
                                                Vote(("sha-1", "cat"), "alice", False)]
    assert image_key({"input_id": "in1", "digest": None}) == "in1"
    assert concept_votes({"kind": "search_click"}, "alice") == []
    assert concept_votes({"kind": "concepts", "input_id": "in1", "concepts": []}, None) == []


def test_rebuild_from_rows() -> None:
    rows = [{"seq": 2, "user": "bob", "body": {"normalized": CONCEPTS}},
            {"seq": 1, "user": "alice", "body": {"normalized": CONCEPTS}}]
    agg = rebuild_labels(rows, lambda r: concept_votes(r["body"]["normalized"], r["user"]), order=lambda r: r["seq"])
    assert agg.labels[("sha-1", "dog")].n_users == 2 and agg.labels[("sha-1", "cat")].value is False


def test_region_judgements() -> None:
    F = RegionFeedback
    normalized = {"kind": "regions", "regions": [
        {"feedback": "accurate", "box": [0.1, 0.1, 0.2, 0.2], "region_id": "r1", "concepts": [{"id": "logo"}]},
        {"feedback": "misplaced", "box": [0.1, 0.1, 0.3, 0.3], "region_id": "r2", "concepts": [{"id": "logo"}]},
        {"feedback": "misplaced", "box": [0.5, 0.5, 0.6, 0.6], "region_id": None, "concepts": [{"id": "logo"}]},
        {"feedback": "not_detected", "box": [0.2, 0.1, 0.3, 0.2], "region_id": None, "concepts": [{"id": "logo"}]},
        {"feedback": "false_positive", "box": [0.3, 0.1, 0.4, 0.2], "region_id": None,
         "concepts": [{"id": "logo", "value": 0.0}]},
    ]}
    predicted = {"r1": ((0.1, 0.1, 0.2, 0.2), 0.9), "r2": ((0.1, 0.1, 0.2, 0.2), 0.7)}
    assert region_judgements(normalized, predicted) == [
        JudgedRegion("logo", F.ACCURATE, (0.1, 0.1, 0.2, 0.2), None, 0.9, "r1"),
        JudgedRegion("logo", F.MISPLACED, (0.1, 0.1, 0.2, 0.2), (0.1, 0.1, 0.3, 0.3), 0.7, "r2"),
        JudgedRegion("logo", F.NOT_DETECTED, None, (0.2, 0.1, 0.3, 0.2), None, None),
        JudgedRegion("logo", F.FALSE_POSITIVE, (0.3, 0.1, 0.4, 0.2), None, None, None),
    ]
    assert region_judgements(CONCEPTS, predicted) == []


def test_a_region_judged_by_five_users_counts_once() -> None:
    """Four say a detected face is right and one says it is not: one true positive, not 4 TP + 1 FP."""
    F = RegionFeedback
    face = JudgedRegion("face", F.ACCURATE, predicted=(0.1, 0.1, 0.5, 0.5), region_id="r1")
    judged = [("o1", f"u{i}", face) for i in range(4)]
    judged.append(("o1", "u4", JudgedRegion("face", F.FALSE_POSITIVE, predicted=(0.1, 0.1, 0.5, 0.5),
                                            region_id="r1")))
    report = evaluate_regions(one_per_region(judged))
    assert (report.overall.tp, report.overall.fp, report.overall.n_judged) == (1, 0, 1)


def test_a_users_last_word_counts_and_a_tie_goes_to_the_latest() -> None:
    F = RegionFeedback
    box = (0.1, 0.1, 0.5, 0.5)
    ok, wrong = (JudgedRegion("face", f, predicted=box, region_id="r1") for f in (F.ACCURATE, F.FALSE_POSITIVE))
    assert [r.feedback for r in one_per_region([("o1", "u1", ok), ("o1", "u1", wrong)])] == [F.FALSE_POSITIVE]
    assert [r.feedback for r in one_per_region([("o1", "u1", wrong), ("o1", "u2", ok)])] == [F.ACCURATE]
    assert len(one_per_region([("o1", "u1", ok), ("o2", "u1", ok)])) == 2  # another output, another region


def test_missed_boxes_of_one_concept_that_overlap_are_one_region() -> None:
    F = RegionFeedback
    missed = [JudgedRegion("face", F.NOT_DETECTED, corrected=box)
              for box in ((0.1, 0.1, 0.5, 0.5), (0.12, 0.1, 0.52, 0.5), (0.6, 0.6, 0.9, 0.9))]
    merged = one_per_region([("o1", "u1", missed[0]), ("o1", "u2", missed[1]), ("o1", "u2", missed[2]),
                             ("o1", "u3", JudgedRegion("dog", F.NOT_DETECTED, corrected=(0.1, 0.1, 0.5, 0.5)))])
    assert sorted(r.concept for r in merged) == ["dog", "face", "face"]
