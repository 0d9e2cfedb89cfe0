"""Cross-validation over every labelled image: out-of-fold head scores and the base model's share.

Why: a fixed held-out fifth spends a fifth of the labels on nothing but the promotion test, which
is what made a version trained from feedback lose to a plain regression fitted on all of them.
Here every labelled image is scored once by heads fitted without it (k folds, the fold of an image
fixed by a hash of its key, so the same image stays in the same fold from one training to the
next); those out-of-fold scores decide promotion and how much say the base model keeps, and the
version itself is fitted on every image.

The fold fits reuse the regularisation each concept's full fit chose instead of searching it again
and calibrate once on the out-of-fold margins instead of in inner folds (the two are most of a
fit's cost): a little optimistic, in exchange for a cross-validation that costs a third of the
fit itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression

from visionloop.learning.heads import ConceptHeads
from visionloop.learning.split import holdout_score

N_FOLDS = 5
SHARE_GRID = tuple(np.round(np.linspace(0.0, 1.0, 11), 2))  # the head's share against the base model


def fold_of(keys: Sequence[str], n_folds: int = N_FOLDS, salt: str = "") -> np.ndarray:
    """The fold of each key in ``range(n_folds)``: fixed by a hash, as :mod:`visionloop.learning.split`."""
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    return np.array([min(int(holdout_score(k, salt) * n_folds), n_folds - 1) for k in keys], dtype=np.int64)


def cross_val_proba(heads: ConceptHeads, X: np.ndarray, Y: np.ndarray, W: np.ndarray, concepts: Sequence[str],
                    folds: np.ndarray) -> np.ndarray:
    """Out-of-fold probability of each concept of the fitted ``heads`` for every row, (n, len(concepts)).

    Column ``j`` is ``concepts[j]``; NaN where the fold's heads could not learn the concept (too few
    labels outside the fold) or ``heads`` has no head for it. Each fold fits one concept at a time
    with the regularisation ``heads`` chose for it on every row and without the calibration's inner
    folds; a concept the full fit calibrated gets one Platt calibration on its out-of-fold margins
    instead (their order, hence AUC, is unchanged).
    """
    if len(folds) != len(X):
        raise ValueError(f"folds must give one fold per row ({len(X)}), got {len(folds)}")
    P = np.full((len(X), len(concepts)), np.nan)
    fitted_heads = dict(zip(heads.concepts_, zip(heads.C_, heads.calibrated_, strict=True), strict=True))
    uncalibrated = {"min_calibration": np.iinfo(np.int32).max}
    for j, concept in enumerate(concepts):
        if concept not in fitted_heads:
            continue
        C, calibrated = fitted_heads[concept]
        one = clone(heads).set_params(Cs=(float(C),), **uncalibrated)
        for f in np.unique(folds):
            test = folds == f
            fitted = clone(one).fit(X[~test], Y[~test, j:j + 1], sample_weight=W[~test, j:j + 1],
                                    concepts=[concept])
            if fitted.concepts_:
                P[test, j] = fitted.decision_function(X[test])[:, 0]
        P[:, j] = _platt(P[:, j], Y[:, j], W[:, j]) if calibrated else _sigmoid(P[:, j])
    return P


def _sigmoid(margin: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 1.0 / (1.0 + np.exp(-np.clip(margin, -500, 500)))


def _platt(margin: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Margins to probabilities by a logistic fit on the labelled rows (NaN stays NaN)."""
    rows = ~np.isnan(margin) & ~np.isnan(y) & (w > 0)
    if not rows.any() or y[rows].min() == y[rows].max():
        return _sigmoid(margin)
    fit = LogisticRegression(C=1e4).fit(margin[rows, None], y[rows], sample_weight=w[rows])
    if fit.coef_[0, 0] <= 0:  # as the heads: an inverted calibration is refused
        return _sigmoid(margin)
    out = np.full_like(margin, np.nan)
    known = ~np.isnan(margin)
    out[known] = fit.predict_proba(margin[known, None])[:, 1]
    return out


def blend(base: np.ndarray, head: np.ndarray, share: float) -> np.ndarray:
    """The served score: ``share`` of the head's probability, the rest the base model's score."""
    return (1.0 - share) * base + share * head


def _log_loss(p: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-(w * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum() / w.sum())


def base_shares(oof: np.ndarray, base: np.ndarray, Y: np.ndarray, W: np.ndarray,
                grid: Sequence[float] = SHARE_GRID) -> list[float | None]:
    """Per concept, the head's share against the base model that predicts its labels best out of fold.

    ``oof`` are :func:`cross_val_proba`'s scores, ``base`` the base model's (NaN where it does not
    know the concept), ``Y``/``W`` the labels and weights. The share minimises the weighted log loss
    of :func:`blend` on the rows both scored (a base model that is wrong on the app's images gets
    none); None where there is nothing to weigh (a concept the base model does not know, or no
    labelled row with both scores and both classes): the caller's prior applies.
    """
    shares: list[float | None] = []
    for j in range(Y.shape[1]):
        rows = ~np.isnan(oof[:, j]) & ~np.isnan(base[:, j]) & ~np.isnan(Y[:, j]) & (W[:, j] > 0)
        y = Y[rows, j]
        if not rows.any() or y.min() == y.max():
            shares.append(None)
            continue
        losses = [_log_loss(blend(base[rows, j], oof[rows, j], s), y, W[rows, j]) for s in grid]
        best = min(losses)
        # the largest share among equally good ones: the head carries the app's own labels
        shares.append(float(max(s for s, loss in zip(grid, losses) if loss <= best + 1e-12)))
    return shares
