"""Concept metrics on a hand-computed fixture, plus the empty and one-class cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from visionloop.learning.metrics_concepts import ConceptRecord, _weighted_auc, evaluate_concepts

R = ConceptRecord
FIXTURE = [
    R("o1", "dog", 0.9, True), R("o1", "cat", 0.2, False),
    R("o2", "dog", 0.6, False), R("o2", "cat", 0.7, True),
    R("o3", "dog", 0.4, True), R("o3", "cat", 0.3, False),
    R("o4", "dog", 0.1, False),
]


def test_hand_computed_per_concept_figures() -> None:
    report = evaluate_concepts(FIXTURE, min_count=1)
    dog = report.concepts["dog"]
    # threshold 0.5: o1 TP, o2 FP, o3 FN, o4 TN
    assert (dog.precision.value, dog.recall.value, dog.f1.value) == (0.5, 0.5, 0.5)
    assert dog.roc_auc.value == 0.75  # pairs (pos, neg): .9>.6, .9>.1, .4<.6, .4>.1
    assert (dog.n_pos, dog.n_neg, dog.too_few) == (2, 2, False)
    cat = report.concepts["cat"]
    assert (cat.precision.value, cat.recall.value, cat.roc_auc.value) == (1.0, 1.0, 1.0)
    assert report.macro_auc.value == pytest.approx(0.875)
    assert report.macro_auc_concepts == ["cat", "dog"]
    assert (report.n_records, report.n_outputs) == (7, 4)


def test_top_concept_confusion() -> None:
    top = evaluate_concepts(FIXTURE).top_concept
    assert top.labels == ["cat", "dog"]
    assert top.matrix.tolist() == [[1, 0], [0, 2]]  # o1 dog/dog, o2 cat/cat, o3 dog/dog
    assert top.n_skipped == 1  # o4 has no positive concept
    assert top.accuracy.value == 1.0 and top.accuracy.n == 3 and top.accuracy.too_few


def test_top_concept_from_the_whole_vocabulary() -> None:
    top = evaluate_concepts(FIXTURE, predicted_top={"o1": "car"}).top_concept
    assert top.labels == ["car", "cat", "dog"]
    assert top.matrix.tolist() == [[0, 0, 0], [0, 1, 0], [1, 0, 1]]
    assert top.accuracy.value == pytest.approx(2 / 3)


def test_threshold_is_a_parameter() -> None:
    dog = evaluate_concepts(FIXTURE, threshold=0.3).concepts["dog"]
    assert (dog.precision.value, dog.recall.value) == (pytest.approx(2 / 3), 1.0)


def test_one_class_concept_has_no_auc_and_is_left_out_of_the_macro() -> None:
    report = evaluate_concepts(FIXTURE + [R("o5", "bird", 0.8, True), R("o6", "bird", 0.3, True)])
    bird = report.concepts["bird"]
    assert bird.roc_auc.value is None and bird.roc_auc.low is None
    assert bird.recall.value == 0.5 and bird.precision.value == 1.0
    assert "bird" not in report.macro_auc_concepts


def test_no_records() -> None:
    report = evaluate_concepts([])
    assert report.concepts == {} and report.macro_auc.value is None and report.macro_auc.too_few
    assert report.top_concept.matrix.shape == (0, 0) and report.top_concept.accuracy.value is None


def test_only_positive_labels_give_no_macro_auc() -> None:
    report = evaluate_concepts([R("o1", "dog", 0.9, True)])
    assert report.macro_auc.value is None and report.concepts["dog"].f1.value == 1.0


def test_too_few_flag_and_interval() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.5
    scores = np.clip(labels * 0.3 + rng.random(200) * 0.7, 0, 1)
    records = [R(i, "dog", float(s), bool(y)) for i, (s, y) in enumerate(zip(scores, labels, strict=True))]
    report = evaluate_concepts(records, n_resamples=200, seed=3)
    auc = report.concepts["dog"].roc_auc
    assert not auc.too_few and auc.n == 200
    assert auc.low < auc.value < auc.high and auc.high - auc.low < 0.2
    assert evaluate_concepts(records, seed=3).concepts == report.concepts  # seeded: reproducible
    few = evaluate_concepts(records[:15]).concepts["dog"]
    assert few.too_few and few.roc_auc.too_few


def test_vectorised_auc_matches_sklearn_with_weights_and_ties() -> None:
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 5, size=40).astype(float)  # many ties
    y = (rng.random(40) < 0.4).astype(float)
    weights = rng.integers(0, 4, size=(5, 40)).astype(float)
    ours = _weighted_auc(scores, y, weights)
    for row, value in zip(weights, ours, strict=True):
        assert value == pytest.approx(roc_auc_score(y, scores, sample_weight=row))
    assert np.isnan(_weighted_auc(scores, np.ones(40), weights)).all()


def test_figures_that_are_undefined_are_none_not_zero() -> None:
    """dog: never predicted (threshold 0.5) and never present; cat: present, never predicted."""
    report = evaluate_concepts([R("o1", "dog", 0.1, False), R("o2", "dog", 0.2, False),
                                R("o1", "cat", 0.3, True), R("o2", "cat", 0.1, False)], threshold=0.5)
    dog, cat = report.concepts["dog"], report.concepts["cat"]
    assert (dog.precision.value, dog.recall.value, dog.f1.value, dog.roc_auc.value) == (None, None, None, None)
    assert dog.precision.low is None and dog.recall.high is None
    assert (cat.precision.value, cat.recall.value, cat.f1.value) == (None, 0.0, 0.0)
    assert cat.roc_auc.value == 1.0


def test_no_outputs_with_one_positive_is_no_accuracy_and_too_few() -> None:
    accuracy = evaluate_concepts([R("o1", "dog", 0.9, False)]).top_concept.accuracy
    assert accuracy.value is None and accuracy.too_few
