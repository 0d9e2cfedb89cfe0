"""Cross-validation over every labelled image: stable folds, out-of-fold scores, the base model's share."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from visionloop.learning.crossval import base_shares, cross_val_proba, fold_of
from visionloop.learning.heads import ConceptHeads

NAN = np.nan


def blobs(n: int, seed: int = 0, spread: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(100).normal(size=(2, 8)) * 1.5
    y = rng.integers(0, 2, n)
    return centers[y] + spread * rng.normal(size=(n, 8)), y.astype(float)


def test_folds_are_fixed_by_the_key_and_balanced() -> None:
    keys = [f"image-{i}" for i in range(2000)]
    folds = fold_of(keys)
    assert folds.tolist() == fold_of(keys).tolist()  # no state, no seed
    assert fold_of(keys[:10]).tolist() == folds[:10].tolist()  # an image keeps its fold as others arrive
    assert sorted(set(folds.tolist())) == [0, 1, 2, 3, 4]
    assert np.bincount(folds).min() > 0.17 * len(keys)
    assert fold_of(keys, salt="app-b").tolist() != folds.tolist()
    with pytest.raises(ValueError, match="n_folds must be >= 2"):
        fold_of(keys, 1)


def test_every_row_is_scored_by_heads_that_did_not_see_it() -> None:
    X, y = blobs(120)
    Y = np.c_[y, np.where(np.arange(120) < 6, 1.0, NAN)]  # a second concept with too few labels
    W = np.ones_like(Y)
    heads = ConceptHeads().fit(X, Y, concepts=["dog", "cat"])
    folds = fold_of([f"k{i}" for i in range(120)])
    P = cross_val_proba(heads, X, Y, W, ["dog", "cat"], folds)
    assert P.shape == (120, 2) and np.isnan(P[:, 1]).all()  # the full fit skipped "cat"
    assert not np.isnan(P[:, 0]).any() and ((P[:, 0] >= 0) & (P[:, 0] <= 1)).all()
    in_sample = roc_auc_score(y, heads.predict_proba(X)[:, 0])
    out_of_fold = roc_auc_score(y, P[:, 0])
    assert 0.8 < out_of_fold <= in_sample  # honest, and not worse than chance
    # a row's own label does not reach its margin: flipping it leaves the order of its fold's scores
    # (only the one calibration of all margins sees it)
    flipped = Y.copy()
    flipped[0, 0] = 1 - flipped[0, 0]
    again = cross_val_proba(heads, X, flipped, W, ["dog", "cat"], folds)
    same = folds == folds[0]
    assert np.argsort(again[same, 0]).tolist() == np.argsort(P[same, 0]).tolist()
    with pytest.raises(ValueError, match="one fold per row"):
        cross_val_proba(heads, X, Y, W, ["dog", "cat"], folds[:-1])


def test_the_base_model_gets_the_share_its_evidence_earns() -> None:
    rng = np.random.default_rng(0)
    y = (np.arange(200) % 2).astype(float)
    good_head = np.clip(0.8 * y + 0.1 + 0.1 * rng.normal(size=200), 0.01, 0.99)
    wrong_base = np.clip(0.7 * (1 - y) + 0.1 * rng.random(200), 0.0, 1.0)  # says the opposite
    good_base = y * 0.9 + 0.05
    useless_head = rng.random(200)
    oof = np.c_[good_head, useless_head, good_head]
    base = np.c_[wrong_base, good_base, np.full(200, NAN)]
    Y = np.c_[y, y, y]
    shares = base_shares(oof, base, Y, np.ones_like(Y))
    assert shares[0] == 1.0  # a base model wrong on this app's images gets no say
    assert shares[1] is not None and shares[1] <= 0.2  # a good base keeps most of it over a useless head
    assert shares[2] is None  # a concept the base model does not know: nothing to weigh
    one_class = base_shares(oof[:, :1], base[:, :1], np.ones((200, 1)), np.ones((200, 1)))
    assert one_class == [None]
