"""A metric value with its bootstrap interval and the evidence behind it.

Why: a figure from feedback is only as good as the number of labels behind it. Every metric in
this package is an :class:`Estimate` so the promotion rule and the API can refuse to act on (or
to show without a warning) a number resting on a handful of labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_RESAMPLES = 200
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """``value`` is None when undefined (e.g. ROC AUC with one class); ``n`` labels stand behind it."""

    value: float | None
    low: float | None = None
    high: float | None = None
    n: int = 0
    too_few: bool = False


def resample_counts(n_units: int, n_resamples: int = N_RESAMPLES, seed: int = 0) -> np.ndarray:
    """How many times each unit is drawn in each bootstrap resample: shape (n_resamples, n_units).

    Resampling whole units (outputs, searches) keeps the records of one unit together.
    """
    if n_units == 0:
        return np.zeros((n_resamples, 0))
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_resamples).astype(float)


def interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """Percentile interval of the defined (non-NaN) bootstrap samples; (None, None) if none are."""
    samples = np.asarray(samples, dtype=float)
    samples = samples[~np.isnan(samples)]
    if samples.size == 0:
        return None, None
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def ratio(numerator: np.ndarray, denominator: np.ndarray, undefined: float = 0.0) -> np.ndarray:
    """``numerator / denominator`` with ``undefined`` where the denominator is 0 (NaN: no figure,
    as :func:`interval` skips it; 0: ``zero_division=0``)."""
    out = np.full(np.broadcast(numerator, denominator).shape, undefined, dtype=float)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def defined(value: float) -> float | None:
    """A point figure, or None where it is undefined (sklearn's ``zero_division=np.nan``)."""
    return None if np.isnan(value) else float(value)
