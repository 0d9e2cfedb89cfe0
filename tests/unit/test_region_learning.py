"""Region learning's rules on hand-made candidates: labels from feedback, recovery of missed regions,
box corrections learned from raw boxes, replay of versions, and the artifact round trip."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.learning.metrics_regions import evaluate_regions
from visionloop.learning.region_votes import Statements
from visionloop.learning.vocabulary import RegionFeedback
from visionloop.services.training.region_learning import (
    DETECTORS,
    Crops,
    JudgedOutput,
    fit_rules,
    label,
    nothing_learned,
    redetected,
    replay,
    stored_candidates,
)
from visionloop.services.training.region_rules import Candidate, RegionRules

FACE = DETECTORS["face"]
NO_IMAGES = Crops(None, None)  # type: ignore[arg-type]  # never asked: no false positives to remember


def face(cid: str, score: float, box: tuple[float, float, float, float] = (0.2, 0.2, 0.6, 0.6)) -> Candidate:
    return Candidate(cid, "face", "face", box, score)


def region(feedback: str, box: list[float], region_id: str | None = None, value: float = 1.0) -> dict:
    return {"feedback": feedback, "box": box, "region_id": region_id, "concepts": [{"id": "face", "value": value}]}


def statements(*regions: dict) -> Statements:
    said = Statements()
    for r in regions:
        said.add(r, {"face"})
    return said


def test_labels_from_each_kind_of_feedback() -> None:
    shown = {"a": (0.1, 0.1, 0.3, 0.3), "b": (0.5, 0.5, 0.7, 0.7), "c": (0.0, 0.6, 0.2, 0.8)}
    candidates = [face("a", 0.9, shown["a"]), face("b", 0.8, shown["b"]), face("c", 0.6, shown["c"]),
                  face("low", 0.3, (0.6, 0.0, 0.9, 0.3)), face("junk", 0.2, (0.0, 0.0, 0.05, 0.05))]
    said = statements(region("accurate", [0.1, 0.1, 0.3, 0.3], "a"),
                      region("accurate", [0.5, 0.5, 0.7, 0.7], "b"),
                      region("misplaced", [0.55, 0.5, 0.75, 0.7], "b"),  # the later statement wins
                      region("false_positive", [0.0, 0.6, 0.2, 0.8], "c"),
                      region("not_detected", [0.62, 0.02, 0.9, 0.3]),
                      region("not_detected", [0.9, 0.9, 1.0, 1.0]),  # nothing there to recover
                      region("false_positive", [0.3, 0.3, 0.4, 0.4]))  # untied: about nothing predicted
    out = label("o1", "d1", candidates, shown, said)
    by_id = {lab.candidate.id: lab for lab in out.labelled}
    assert (by_id["a"].real, by_id["a"].truth, by_id["a"].said) == (True, shown["a"], "accurate")
    assert (by_id["b"].real, by_id["b"].truth, by_id["b"].said) == (True, (0.55, 0.5, 0.75, 0.7), "misplaced")
    assert (by_id["c"].real, by_id["c"].said) == (False, "false_positive")
    assert (by_id["low"].real, by_id["low"].truth, by_id["low"].said) == (True, (0.62, 0.02, 0.9, 0.3), "not_detected")
    assert (by_id["junk"].real, by_id["junk"].said) == (False, "unreported")  # the user said what was missed
    assert out.unreachable == [("face", (0.9, 0.9, 1.0, 1.0))]


def test_without_a_missed_report_unshown_candidates_stay_unknown() -> None:
    out = label("o1", "d1", [face("a", 0.9), face("low", 0.3, (0.7, 0.7, 0.9, 0.9))], {"a": (0.2, 0.2, 0.6, 0.6)},
                statements(region("accurate", [0.2, 0.2, 0.6, 0.6], "a")))
    assert [lab.candidate.id for lab in out.labelled] == ["a"]


def test_untied_accurate_box_counts_as_missed() -> None:
    said = statements(region("accurate", [0.2, 0.2, 0.6, 0.6]), region("not_detected", [0.21, 0.2, 0.6, 0.6]))
    assert said.missed == [("face", (0.21, 0.2, 0.6, 0.6))]  # one object said twice is one missed box


def test_re_detected_candidates_take_the_ids_they_were_shown_with() -> None:
    result = {"regions": [{"id": "shown", "box": [0.2, 0.2, 0.6, 0.6], "value": 0.9, "concepts": [["face", "face", 0.9]]},
                          {"id": "gone", "box": [0.0, 0.0, 0.1, 0.1], "value": 0.7, "concepts": [["face", "face", 0.7]]}]}
    got = redetected("o1", result, [face("x", 0.3, (0.7, 0.7, 0.9, 0.9)), face("y", 0.9, (0.2, 0.2, 0.6, 0.6001))])
    assert [(c.id, c.score) for c in got] == [("o1:0", 0.3), ("shown", 0.9), ("gone", 0.7)]
    assert stored_candidates(result) is None
    assert stored_candidates({"regions": [], "candidates": result["regions"]})[0] == face("shown", 0.9)


def judged(k: int, real_score: float, *, missed: bool) -> JudgedOutput:
    """An output with one real face; when ``missed`` it was not shown and the user drew it, and a
    junk candidate sat below it."""
    box = (0.2, 0.2, 0.6, 0.6)
    candidates = [face(f"f{k}", real_score, box)]
    if missed:
        candidates.append(face(f"j{k}", 0.15 + 0.01 * (k % 5), (0.7, 0.7, 0.95, 0.95)))
        return label(f"o{k}", f"d{k}", candidates, {}, statements(region("not_detected", [0.21, 0.2, 0.6, 0.61])))
    return label(f"o{k}", f"d{k}", candidates, {f"f{k}": box}, statements(region("accurate", list(box), f"f{k}")))


def test_missed_faces_among_low_candidates_lower_the_threshold() -> None:
    train = [judged(k, 0.9, missed=False) for k in range(20)] + \
            [judged(k, 0.35 + 0.01 * (k % 10), missed=True) for k in range(20, 32)]
    rules, learned = fit_rules(train, FACE, NO_IMAGES)
    assert learned["recovered_missed"] == 12 and learned["thresholds"]["face"]["n_judged"] == 44
    assert rules.thresholds["face"] == pytest.approx(0.35)  # every recovered face, no junk
    held = [judged(k, 0.4, missed=True) for k in range(100, 110)] + [judged(k, 0.9, missed=False) for k in range(110, 115)]
    base = evaluate_regions(replay(RegionRules(default=0.5), held, NO_IMAGES)).overall
    learned_version = evaluate_regions(replay(rules, held, NO_IMAGES)).overall
    assert (base.tp, base.fn) == (5, 10) and (learned_version.tp, learned_version.fn, learned_version.fp) == (15, 0, 0)


def test_too_few_judged_detections_learn_nothing() -> None:
    rules, learned = fit_rules([judged(k, 0.9, missed=False) for k in range(29)], FACE, NO_IMAGES)
    why = nothing_learned(rules, learned)
    assert why is not None and "29 judged detections, fewer than 30" in why and "0 false positives" in why


def test_box_corrections_are_learned_from_raw_boxes() -> None:
    outputs = []
    for k in range(12):  # the detector's boxes sit 0.1 (of their height) too high
        raw = (0.2 + 0.01 * k, 0.2, 0.6 + 0.01 * k, 0.6)
        right = [raw[0] + 0.04, 0.2, raw[2] + 0.04, 0.6]
        outputs.append(label(f"o{k}", f"d{k}", [face(f"f{k}", 0.9, raw)], {f"f{k}": raw},
                             statements(region("misplaced", right, f"f{k}"))))
    rules, learned = fit_rules(outputs, FACE, NO_IMAGES)
    assert learned["box_corrections"]["face"]["applied"]
    assert rules.corrections["face"] == pytest.approx((0.1, 0.0, 0.1, 0.0))
    ((_, box),) = rules.apply([face("new", 0.9, (0.2, 0.2, 0.6, 0.6))])
    assert box == pytest.approx((0.24, 0.2, 0.64, 0.6))
    (judgement,) = replay(rules, outputs[:1], NO_IMAGES)
    assert judgement.feedback is RegionFeedback.ACCURATE
    assert judgement.predicted == pytest.approx(judgement.corrected)  # the corrected box is the right one


def test_suppression_needs_embeddings_and_the_artifact_round_trips() -> None:
    negatives = np.eye(4, dtype=np.float32)[[0, 0]]
    rules = RegionRules(default=0.5, thresholds={"face": 0.6}, corrections={"face": (0.1, 0.0, 0.0, 0.0)},
                        negatives=negatives, positives=np.eye(4, dtype=np.float32)[[1]])
    again = RegionRules.from_bytes(rules.to_bytes())
    assert (again.default, again.thresholds, again.corrections) == (0.5, {"face": 0.6}, {"face": (0.1, 0.0, 0.0, 0.0)})
    assert np.array_equal(again.negatives, negatives) and again.suppresses
    candidates = [face("fp", 0.9), face("real", 0.9), face("low", 0.55)]
    with pytest.raises(ValueError, match="crop embeddings"):
        again.apply(candidates)
    shown = again.apply(candidates, lambda cs: np.eye(4, dtype=np.float32)[[0, 1]][: len(cs)])
    assert [c.id for c, _ in shown] == ["real"]
