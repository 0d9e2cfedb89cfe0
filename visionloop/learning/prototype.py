"""A prototype head for a concept with few labels: closeness to its positives' mean.

Why: with ten examples a logistic regression on 1280 features fits noise (it separates any ten
points), while the mean of the positives' unit embeddings, compared with the mean of all the
app's labelled images, is a direction with no free parameter to overfit (nearest-centroid few-shot
classification; Snell et al. 2017 use the same prototypes on learned embeddings). Blended with
the regression (:mod:`visionloop.learning.heads`), it raised held-out ROC AUC of a concept from
few labels and top-1 after few feedback events, offline on stored embeddings (docs/learning.md).

The margin ``x . (mean of positives - background)`` becomes a probability through a logistic fit
on the labelled images' margins, with each positive's margin taken against the mean of the *other*
positives (leave-one-out): its own vector in the mean would make every positive look closer than
a new image will be.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from sklearn.linear_model import LogisticRegression


class Prototype(NamedTuple):
    coef: np.ndarray  # log-odds = coef . x + intercept
    intercept: float


def fit_prototype(X: np.ndarray, y: np.ndarray, w: np.ndarray, background: np.ndarray) -> Prototype | None:
    """The calibrated prototype head of one concept on unit embeddings ``X`` (labels ``y``, weights
    ``w``), or None when its left-out positives do not score above the negatives (or fewer than two
    positives leave nothing to leave out)."""
    positive = y == 1
    if positive.sum() < 2:
        return None
    P, wp = X[positive], w[positive]
    total, mass = (P * wp[:, None]).sum(axis=0), float(wp.sum())
    direction = total / mass - background
    margin = X @ direction
    others = (total[None, :] - P * wp[:, None]) / (mass - wp)[:, None]  # each positive's leave-one-out mean
    margin[positive] = np.einsum("ij,ij->i", P, others) - P @ background
    fit = LogisticRegression(C=1e4, class_weight="balanced").fit(margin[:, None], y, sample_weight=w)
    slope = float(fit.coef_[0, 0])
    if slope <= 0:
        return None
    return Prototype(slope * direction, float(fit.intercept_[0]))
