"""Adapters from the stored ``normalized`` feedback bodies."""

from __future__ import annotations

from visionloop.learning.events import concept_votes, image_key, region_judgements
from visionloop.learning.labels import Vote, rebuild_labels
from visionloop.learning.metrics_regions import JudgedRegion, RegionFeedback

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
