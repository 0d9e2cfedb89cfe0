"""Concept heads: training rules, calibration, no-pickle artifacts, blending, and a sanity run."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from visionloop.learning.heads import ConceptHeads, combine, label_matrix
from visionloop.learning.labels import Label

NAN = np.nan


def blobs(n: int, k: int = 3, d: int = 8, seed: int = 0, spread: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(100).normal(size=(k, d)) * 1.5
    y = rng.integers(0, k, n)
    return centers[y] + spread * rng.normal(size=(n, d)), y


def test_concepts_without_enough_labels_are_skipped_with_the_reason() -> None:
    X, y = blobs(24)
    Y = np.eye(3)[y]
    Y[:, 1] = NAN
    Y[np.flatnonzero(y == 1)[:4], 1] = 1  # 4 positives, < 5
    Y[:, 2] = np.where(y == 2, 1, NAN)  # positives only
    heads = ConceptHeads().fit(X, Y, concepts=["dog", "cat", "bird"])
    assert heads.concepts_ == ["dog"]
    assert heads.skipped_ == {"cat": "4 positive labels, fewer than 5",
                              "bird": "0 negative labels, fewer than 5"}
    assert heads.predict_proba(X).shape == (24, 1)
    assert heads.n_labels_.tolist() == [24] and heads.n_positives_.tolist() == [int((y == 0).sum())]


def test_no_trainable_concept_gives_empty_heads() -> None:
    heads = ConceptHeads().fit(np.zeros((3, 2)), [[1], [NAN], [0]])
    assert heads.concepts_ == [] and heads.predict_proba(np.zeros((2, 2))).shape == (2, 0)
    assert combine({"dog": 0.3}, heads.scores(np.zeros((1, 2)))[0], heads.shares(20)) == {"dog": 0.3}


def test_few_labels_use_the_regression_probability_with_scaling_folded_in() -> None:
    X, y = blobs(20, k=2)
    heads = ConceptHeads(prototype_evidence=0).fit(X, (y == 1).astype(float)[:, None])
    assert not heads.calibrated_[0] and heads.C_[0] == 1.0  # too few for CV and calibration
    assert heads.calibration_.tolist() == [[-1.0, 0.0]]
    scaler = StandardScaler().fit(X)
    lr = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(scaler.transform(X), y)
    assert heads.predict_proba(X)[:, 0] == pytest.approx(lr.predict_proba(scaler.transform(X))[:, 1])


def test_enough_labels_are_cross_validated_and_calibrated() -> None:
    X, y = blobs(60, k=2, spread=2.0)
    heads = ConceptHeads(Cs=(0.1, 1.0), prototype_evidence=0, random_state=0).fit(X, (y == 1).astype(float))
    assert heads.calibrated_[0] and heads.C_[0] in (0.1, 1.0)
    scaler = StandardScaler().fit(X)
    reference = CalibratedClassifierCV(
        LogisticRegression(C=heads.C_[0], class_weight="balanced", max_iter=1000), method="sigmoid",
        cv=StratifiedKFold(3, shuffle=True, random_state=0), ensemble=False,
    ).fit(scaler.transform(X), y)
    assert heads.predict_proba(X)[:, 0] == pytest.approx(reference.predict_proba(scaler.transform(X))[:, 1])
    assert heads.predict(X).shape == (60, 1)


def test_a_decreasing_platt_fit_is_refused_and_the_regression_probability_kept() -> None:
    """On labels the features cannot predict, held-out margins anti-correlate with the labels
    (each fold's model leans away from what it left out) and Platt fits a positive slope."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 20)), (np.arange(40) < 12).astype(float)
    scaler = StandardScaler().fit(X)
    heads = ConceptHeads(prototype_evidence=0).fit(X, y)
    lr = LogisticRegression(C=heads.C_[0], class_weight="balanced", max_iter=1000)
    platt = CalibratedClassifierCV(lr, method="sigmoid", cv=StratifiedKFold(3, shuffle=True, random_state=0),
                                   ensemble=False).fit(scaler.transform(X), y)
    assert platt.calibrated_classifiers_[0].calibrators[0].a_ > 0  # the fit this guards against
    assert not heads.calibrated_[0] and heads.calibration_.tolist() == [[-1.0, 0.0]]
    lr.fit(scaler.transform(X), y)
    assert heads.predict_proba(X)[:, 0] == pytest.approx(lr.predict_proba(scaler.transform(X))[:, 1])


def test_artifact_round_trip_without_pickle() -> None:
    X, y = blobs(60)
    heads = ConceptHeads().fit(X, np.eye(3)[y], concepts=["a", "b", "c"])
    data = heads.to_bytes()
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:  # loads with pickle disabled
        assert set(archive.files) >= {"coef", "intercept", "calibration", "meta"}
    again = ConceptHeads.from_bytes(data)
    assert again.concepts_ == heads.concepts_ and again.get_params() == heads.get_params()
    assert np.array_equal(again.predict_proba(X), heads.predict_proba(X))
    assert again.evidence() == heads.evidence()
    assert heads.evidence() == {c: 2 * min(int((y == j).sum()), int((y != j).sum()))
                                for j, c in enumerate(["a", "b", "c"])}
    assert heads.n_labels_.tolist() == [60, 60, 60]
    with pytest.raises(ValueError, match="not a visionloop.concept_heads/1 artifact"):
        bad = io.BytesIO()
        np.savez(bad, meta=np.frombuffer(b'{"format": "other"}', dtype=np.uint8))
        ConceptHeads.from_bytes(bad.getvalue())


def test_contract_errors() -> None:
    with pytest.raises(NotFittedError):
        ConceptHeads().predict_proba(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="min_positives must be >= 1, got 0"):
        ConceptHeads(min_positives=0).fit(np.zeros((2, 2)), [1, 0])
    with pytest.raises(ValueError, match="Cs must be"):
        ConceptHeads(Cs=()).fit(np.zeros((2, 2)), [1, 0])
    with pytest.raises(ValueError, match="1 \\(positive\\), 0 \\(negative\\) or NaN"):
        ConceptHeads().fit(np.zeros((2, 2)), [2, 0])
    with pytest.raises(ValueError, match="shape"):
        ConceptHeads().fit(np.zeros((2, 2)), [1, 0, 1])
    heads = ConceptHeads().fit(*blobs(20, k=2))
    with pytest.raises(ValueError, match="3 features"):
        heads.predict_proba(np.zeros((1, 3)))


def test_combine_gives_the_head_its_share() -> None:
    out = combine({"dog": 0.2, "cat": 0.9}, {"dog": 0.8, "logo": 0.7}, {"dog": 0.5, "logo": 0.2})
    assert out == {"dog": pytest.approx(0.5), "cat": 0.9, "logo": 0.7}  # a new concept: the head alone
    assert combine({"dog": 0.2}, {"dog": 0.8}, {}) == {"dog": 0.2}  # no share: the base
    assert combine({"dog": 0.2}, {"dog": 0.8}, {"dog": 0.9})["dog"] == pytest.approx(0.74)
    assert combine({}, {}, {}) == {}


def test_shares_are_chosen_where_set_and_the_evidence_prior_elsewhere() -> None:
    X, y = blobs(60)
    heads = ConceptHeads().fit(X, np.eye(3)[y], concepts=["a", "b", "c"])
    prior = {c: n / (n + 20) for c, n in heads.evidence().items()}
    assert heads.shares(20) == pytest.approx(prior)  # nothing chosen yet
    heads.with_shares({"a": 0.0, "b": None})
    assert heads.shares(20) == pytest.approx({"a": 0.0, "b": prior["b"], "c": prior["c"]})
    again = ConceptHeads.from_bytes(heads.to_bytes())
    assert again.shares(20) == pytest.approx(heads.shares(20))
    with pytest.raises(ValueError, match="k must be positive"):
        heads.shares(0)


def test_label_matrix_from_resolved_labels() -> None:
    labels = [
        Label(("in1", "dog"), True, 0.9, 1, 1),
        Label(("in2", "dog"), False, 0.8, 1, 1),
        Label(("in2", "cat"), True, 0.95, 2, 2),
        Label(("in3", "cat"), True, 0.6, 1, 1),  # below min_confidence
        Label(("other", "cat"), True, 0.9, 1, 1),  # not a row we have an embedding for
    ]
    Y, W, names = label_matrix(labels, ["in1", "in2", "in3"], implicit_negative_weight=0.5)
    assert names == ["cat", "dog"]
    assert np.array_equal(Y, [[0, 1], [1, 0], [NAN, NAN]], equal_nan=True)
    assert W.tolist() == [[0.5, 1], [1, 1], [0, 0]]  # in1 is an implicit negative for cat
    Y, W, _ = label_matrix(labels, ["in1", "in2", "in3"], implicit_negative_weight=0)
    assert np.isnan(Y[0, 0]) and W[0, 0] == 0
    Y, W, names = label_matrix([], ["in1"])
    assert Y.shape == (1, 0) and names == []


def test_heads_lift_a_weak_base_model_on_gaussian_blobs() -> None:
    """Labels from feedback on 150 inputs fix a base model that confuses the classes."""
    k = 4
    X_train, y_train = blobs(150, k=k, d=16, seed=1)
    X_test, y_test = blobs(500, k=k, d=16, seed=2)
    names = [f"c{j}" for j in range(k)]
    rng = np.random.default_rng(3)
    # Weak base: knows c0..c2 only, right about half the time; c3 is a new custom concept.
    base = np.where(rng.random((500, k)) < 0.5, np.eye(k)[y_test], rng.random((500, k)))[:, :3] * 0.9
    Y = np.eye(k)[y_train]
    Y[rng.random(Y.shape) < 0.3] = NAN  # feedback is partial
    heads = ConceptHeads().fit(X_train, Y, concepts=names)
    assert heads.concepts_ == names and heads.calibrated_.all()
    shares = heads.shares(20)
    blended = [combine(dict(zip(names[:3], row, strict=True)), scores, shares)
               for row, scores in zip(base, heads.scores(X_test), strict=True)]
    predicted = np.array([names.index(max(s, key=s.get)) for s in blended])
    base_accuracy = np.mean(base.argmax(axis=1) == y_test)
    assert base_accuracy < 0.6
    assert np.mean(predicted == y_test) > base_accuracy + 0.25
    assert np.mean(predicted[y_test == 3] == 3) > 0.8  # the concept the base never knew
