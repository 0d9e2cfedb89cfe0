"""Champion/challenger decisions, new concepts on their own evidence, and the stable hashed split."""

from __future__ import annotations

import pytest

from visionloop.learning.estimates import Estimate
from visionloop.learning.promotion import NewConcept, decide, decide_new_concepts
from visionloop.learning.split import holdout_score, is_held_out


def auc(value: float | None, n: int = 200, too_few: bool = False) -> Estimate:
    low = None if value is None else value - 0.04
    high = None if value is None else value + 0.04
    return Estimate(value, low, high, n=n, too_few=too_few)


CHAMPION = {"macro_auc": auc(0.80), "accuracy": auc(0.70)}


def test_promote_a_better_candidate() -> None:
    decision = decide(CHAMPION, {"macro_auc": auc(0.84), "accuracy": auc(0.71)}, primary="macro_auc")
    assert decision.promote and decision.reason.startswith("promoted")
    assert "better" in decision.comparisons[0].note
    assert decision.comparisons[0].delta == pytest.approx(0.04)
    assert [c.metric for c in decision.comparisons] == ["macro_auc", "accuracy"]


def test_refuse_a_worse_candidate() -> None:
    decision = decide(CHAMPION, {"macro_auc": auc(0.75)}, primary="macro_auc")
    assert not decision.promote and "worse" in decision.reason
    assert "0.750 [0.710, 0.790] on 200 labels vs 0.800" in decision.reason


def test_a_tie_within_tolerance_promotes() -> None:
    decision = decide(CHAMPION, {"macro_auc": auc(0.795)}, primary="macro_auc", tolerance=0.01)
    assert decision.promote and "a tie" in decision.reason
    assert not decide(CHAMPION, {"macro_auc": auc(0.795)}, primary="macro_auc", tolerance=0.0).promote


def test_too_few_labels_refuse_even_a_better_figure() -> None:
    decision = decide(CHAMPION, {"macro_auc": auc(0.95, n=8, too_few=True)}, primary="macro_auc")
    assert not decision.promote and "too few labels" in decision.reason
    undefined = decide(None, {"macro_auc": auc(None, n=0)}, primary="macro_auc")
    assert not undefined.promote and "undefined" in undefined.reason


def test_first_version_is_promoted_on_enough_evidence() -> None:
    assert decide(None, {"macro_auc": auc(0.6)}, primary="macro_auc").promote
    assert decide({"macro_auc": auc(None)}, {"macro_auc": auc(0.6)}, primary="macro_auc").promote


def test_guard_metrics_block_when_worse_but_not_when_thin() -> None:
    worse_guard = decide(CHAMPION, {"macro_auc": auc(0.84), "accuracy": auc(0.60)}, primary="macro_auc")
    assert not worse_guard.promote and worse_guard.reason.startswith("refused: accuracy")
    thin_guard = decide(CHAMPION, {"macro_auc": auc(0.84), "accuracy": auc(0.2, n=3, too_few=True)},
                        primary="macro_auc")
    assert thin_guard.promote and "too few labels" in thin_guard.comparisons[1].note
    new_guard = decide(CHAMPION, {"macro_auc": auc(0.84), "region_f1": auc(0.5)}, primary="macro_auc")
    assert new_guard.promote  # nothing to compare the new metric with


def test_lower_is_better_and_per_metric_tolerance() -> None:
    champion = {"mrr": auc(0.50), "mean_clicked_rank": Estimate(3.0, n=100)}
    challenger = {"mrr": auc(0.52), "mean_clicked_rank": Estimate(3.4, n=100)}
    refused = decide(champion, challenger, primary="mrr", lower_is_better={"mean_clicked_rank"})
    assert not refused.promote and refused.comparisons[1].delta == pytest.approx(-0.4)
    allowed = decide(champion, challenger, primary="mrr", lower_is_better={"mean_clicked_rank"},
                     tolerance={"mrr": 0.01, "mean_clicked_rank": 0.5})
    assert allowed.promote


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="no 'macro_auc' figure"):
        decide(CHAMPION, {"accuracy": auc(0.9)}, primary="macro_auc")
    with pytest.raises(ValueError, match="tolerance"):
        decide(CHAMPION, {"macro_auc": auc(0.9)}, primary="macro_auc", tolerance=-1)


def test_held_out_split_is_stable_and_proportional() -> None:
    keys = [f"input-{i}" for i in range(5000)]
    held = [k for k in keys if is_held_out(k, 0.2)]
    assert 0.18 < len(held) / len(keys) < 0.22
    assert held == [k for k in keys if is_held_out(k, 0.2)]  # no state, no seed
    assert set(held) <= {k for k in keys if is_held_out(k, 0.3)}  # growing only adds
    assert holdout_score("input-1") != holdout_score("input-1", salt="model-b")
    assert not is_held_out("x", 0.0) and is_held_out("x", 1.0)
    with pytest.raises(ValueError):
        is_held_out("x", 1.5)


def test_reports_feed_the_decision() -> None:
    from visionloop.learning.metrics_concepts import ConceptRecord, evaluate_concepts

    def records(noise: float) -> list[ConceptRecord]:
        out = []
        for i in range(60):
            label = i % 2 == 0
            score = (0.8 if label else 0.2) + (noise if i % 3 == 0 else 0.0) * (-1 if label else 1)
            out.append(ConceptRecord(f"o{i}", "dog", score, label))
        return out

    champion = evaluate_concepts(records(0.7)).figures()
    challenger = evaluate_concepts(records(0.0)).figures()
    assert challenger["macro_auc"].value == 1.0 > champion["macro_auc"].value
    assert decide(champion, challenger, primary="macro_auc").promote
    assert not decide(challenger, champion, primary="macro_auc").promote


def concept(name: str, value: float | None, n_pos: int = 20, n_neg: int = 40) -> NewConcept:
    return NewConcept(name, auc(value, n=n_pos + n_neg, too_few=min(n_pos, n_neg) < 10), n_pos, n_neg)


def test_a_version_adding_a_concept_goes_live_on_its_own_evidence() -> None:
    shared = decide(CHAMPION, {"macro_auc": auc(0.81), "accuracy": auc(0.70)}, primary="macro_auc")
    decision = decide_new_concepts(shared, [concept("texture", 0.95)])
    assert decision.promote
    assert decision.reason.startswith("promoted: new concepts go live on their own evidence: texture: "
                                      "cross-validated AUC 0.950")
    assert "clears the bar of 0.75 (20 positive and 40 negative labels)" in decision.reason
    assert "shared concepts: macro_auc: 0.810" in decision.reason
    # with nothing shared to compare (the base model knows none of the labelled concepts)
    assert decide_new_concepts(None, [concept("texture", 0.95)]).promote


def test_a_thin_shared_figure_does_not_block_a_new_concept_but_a_worse_one_does() -> None:
    thin = decide(CHAMPION, {"macro_auc": auc(0.99, n=4, too_few=True)}, primary="macro_auc")
    decision = decide_new_concepts(thin, [concept("texture", 0.9)])
    assert decision.promote and "shared concepts not compared: macro_auc: the candidate's 0.990" in decision.reason
    worse = decide(CHAMPION, {"macro_auc": auc(0.60), "accuracy": auc(0.70)}, primary="macro_auc")
    decision = decide_new_concepts(worse, [concept("texture", 0.9)])
    assert not decision.promote and decision.reason.startswith("refused: shared concepts: macro_auc: 0.600")


def test_refusals_name_the_concept_and_what_is_missing() -> None:
    few = decide_new_concepts(None, [concept("cat (n02121808)", 0.99, n_pos=6, n_neg=30), concept("texture", 0.9)])
    assert not few.promote
    assert few.reason.startswith("refused: new concept not ready: cat (n02121808): 6 positive and 30 negative "
                                 "labels; 4 more positive labels of cat (n02121808) would let its cross-validated "
                                 "AUC count (at least 10 of each)")
    both = decide_new_concepts(None, [concept("texture", 0.9, n_pos=9, n_neg=1)])
    assert "1 more positive label and 9 more negative labels of texture" in both.reason
    weak = decide_new_concepts(None, [concept("texture", 0.62)])
    assert not weak.promote and "texture: cross-validated AUC 0.620 [0.580, 0.660] on 60 labels, below the bar " \
                                "of 0.75; more labels of texture" in weak.reason
    assert decide_new_concepts(None, []).reason == "refused: no labelled concept to evaluate"
