"""Several end users' region feedback resolved by one reliability-weighted vote per region."""

from __future__ import annotations

from visionloop.learning.region_votes import Statements, resolve
from visionloop.learning.vocabulary import RegionFeedback


def said(feedback: str, region_id: str | None = "r", box: tuple[float, float, float, float] = (0.2, 0.2, 0.6, 0.6),
         concept: str = "face") -> Statements:
    out = Statements()
    out.add({"feedback": feedback, "box": list(box), "region_id": region_id,
             "concepts": [{"id": concept, "value": 1.0}]}, {"face"})
    return out


def test_a_lone_statement_about_a_region_stands() -> None:
    got = resolve({"o1": {"u1": said("false_positive")}, "o2": {"u1": said("misplaced", box=(0.1, 0.1, 0.5, 0.5))}})
    assert got["o1"].tied["r"][0] is RegionFeedback.FALSE_POSITIVE
    assert got["o2"].tied["r"] == (RegionFeedback.MISPLACED, (0.1, 0.1, 0.5, 0.5))


def test_a_hostile_user_loses_the_tie_and_their_invented_boxes() -> None:
    """Two honest users agree on four outputs where a third calls every real face a false
    positive; on a fifth output only one honest user and the hostile one judged: a tie by count,
    which the hostile user's record decides. Their 'missed' box there is not taken either."""
    history = {f"o{i}": {"alice": said("accurate"), "bob": said("accurate"), "mallory": said("false_positive")}
               for i in range(4)}
    invented = said("false_positive")
    invented.miss("face", (0.7, 0.7, 0.9, 0.9))
    got = resolve({**history, "o4": {"alice": said("accurate"), "mallory": invented}})
    assert got["o4"].tied["r"][0] is RegionFeedback.ACCURATE
    assert got["o4"].missed == []
    honest_miss = said("accurate")
    honest_miss.miss("face", (0.7, 0.7, 0.9, 0.9))
    assert resolve({**history, "o4": {"alice": honest_miss}})["o4"].missed == [("face", (0.7, 0.7, 0.9, 0.9))]


def test_a_real_region_keeps_the_box_of_its_most_trusted_judge() -> None:
    history = {f"o{i}": {"alice": said("accurate"), "bob": said("accurate"), "mallory": said("false_positive")}
               for i in range(4)}
    got = resolve({**history, "o4": {"alice": said("misplaced", box=(0.25, 0.2, 0.65, 0.6)),
                                     "mallory": said("misplaced", box=(0.0, 0.0, 0.1, 0.1))}})
    assert got["o4"].tied["r"] == (RegionFeedback.MISPLACED, (0.25, 0.2, 0.65, 0.6))


def test_overlapping_missed_boxes_of_two_users_are_one_report_with_the_latest_box() -> None:
    alice, bob = said("accurate"), said("accurate")
    alice.miss("face", (0.7, 0.7, 0.9, 0.9))
    bob.miss("face", (0.71, 0.7, 0.9, 0.9))
    assert resolve({"o": {"alice": alice, "bob": bob}})["o"].missed == [("face", (0.71, 0.7, 0.9, 0.9))]


def test_a_not_detected_statement_about_a_predicted_region_says_nothing_of_it() -> None:
    assert resolve({"o": {"alice": said("not_detected")}})["o"].tied == {}
