"""Prototype heads: the leave-one-out margins, the refusals, and the blend with the regression."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from visionloop.learning.heads import ConceptHeads
from visionloop.learning.prototype import fit_prototype


def test_margins_leave_each_positive_out_of_its_own_prototype() -> None:
    X = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])
    y = np.array([1.0, 1.0, 0.0, 0.0])
    w = np.ones(4)
    background = X.mean(axis=0)  # (0.15, 0.45)
    head = fit_prototype(X, y, w, background)
    assert head is not None
    direction = np.array([0.8, 0.4]) - background  # mean of the positives minus the background
    # Each positive against the *other* positive: (1, 0).(0.6, 0.8) - (1, 0).bg = 0.45,
    # (0.6, 0.8).(1, 0) - (0.6, 0.8).bg = 0.6 - 0.45 = 0.15; negatives against the full mean.
    margins = np.array([0.45, 0.15, X[2] @ direction, X[3] @ direction])
    fit = LogisticRegression(C=1e4, class_weight="balanced").fit(margins[:, None], y)
    assert head.coef == pytest.approx(fit.coef_[0, 0] * direction)
    assert head.intercept == pytest.approx(fit.intercept_[0])


def test_no_prototype_without_two_positives_or_when_left_out_positives_score_low() -> None:
    X = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    w = np.ones(4)
    assert fit_prototype(X, np.array([1.0, 0, 0, 0]), w, X.mean(axis=0)) is None
    # Two opposite positives: each one's left-out prototype is the other, pointing away from it.
    assert fit_prototype(X, np.array([1.0, 1, 0, 0]), w, X.mean(axis=0)) is None


def test_heads_blend_regression_and_prototype_log_odds_by_evidence() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 6))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = (np.arange(20) < 5).astype(float)
    X[y == 1] += 0.5  # the positives lean one way
    both = ConceptHeads(prototype_evidence=30).fit(X, y)
    regression = ConceptHeads(prototype_evidence=0).fit(X, y)
    prototype = fit_prototype(X, y, np.ones(20), X.mean(axis=0))
    assert prototype is not None
    share = 10 / (10 + 30)  # evidence: twice the 5 positives
    expected = share * regression.decision_function(X)[:, 0] + (1 - share) * (X @ prototype.coef + prototype.intercept)
    assert both.decision_function(X)[:, 0] == pytest.approx(expected)
    assert both.predict_proba(X)[:, 0] == pytest.approx(1 / (1 + np.exp(-expected)))
    assert math.isclose(both.calibration_[0, 0], -1.0) and both.calibration_[0, 1] == 0.0


def test_the_prototype_lifts_a_ten_example_concept_in_many_dimensions() -> None:
    """Ten positives in 256 dimensions whose variances fall off as embeddings' do: standardised,
    the regression weighs the many faint dimensions like the few strong ones and fits noise; the
    prototype keeps the concept's direction."""
    rng = np.random.default_rng(1)
    d = 256
    scales = np.arange(1, d + 1) ** -0.5
    shift = np.where(np.arange(d) < 8, scales, 0.0)  # the concept lives in the strong dimensions

    def sample(n_pos: int, n_neg: int) -> tuple[np.ndarray, np.ndarray]:
        X = rng.normal(size=(n_pos + n_neg, d)) * scales
        X[:n_pos] += shift
        return X / np.linalg.norm(X, axis=1, keepdims=True), (np.arange(n_pos + n_neg) < n_pos).astype(float)

    X, y = sample(10, 20)
    X_test, y_test = sample(200, 400)
    auc = {k: roc_auc_score(y_test, ConceptHeads(prototype_evidence=k).fit(X, y).decision_function(X_test)[:, 0])
           for k in (0, 100)}
    assert auc[100] > auc[0] + 0.1
