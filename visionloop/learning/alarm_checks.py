"""Count-aware tests that say whether a recent window of evidence left its own history's bounds.

Why: an alarm on a figure must not fire on three events nor stay quiet on fifty. Each test here
takes the recent window and the history before it, and answers a :class:`Check`: the recent
figure, the bound it is compared with (derived from the history and the window's size), whether
it is outside, and the evidence behind it. Pure functions on counts and arrays; the services
decide what the windows hold (:mod:`visionloop.services.monitoring`).

- :func:`proportion_shift`: a rate (negative verdicts, clicks) rising or falling. The history's
  rate is uncertain too, so the recent count is judged against a beta-binomial (the binomial of
  the window's size with the rate drawn from its Jeffreys posterior on the history): a short history
  widens the bound, a long one narrows it to the binomial's.
- :func:`mean_drop`: a mean of bounded per-event values (reciprocal ranks) falling, with a
  one-sided z bound on the pooled variance.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import betabinom, norm


@dataclasses.dataclass(frozen=True)
class Check:
    """One test of one window: ``outside`` when ``figure`` is beyond ``threshold`` (above it for a
    rising figure, below for a falling one); ``evidence`` events stand behind ``figure``."""

    figure: float
    threshold: float
    outside: bool
    evidence: int
    p_value: float


def proportion_shift(recent_hits: int, recent_n: int, past_hits: int, past_n: int, *, rise: bool,
                     alpha: float, min_events: int) -> Check | None:
    """Has the rate of hits in the recent window risen (``rise``) or fallen against the history?

    None (no verdict) while either side has fewer than ``min_events`` events. ``threshold`` is the
    rate the window would have to pass for a one-sided p-value at most ``alpha``.
    """
    _check_counts(recent_hits, recent_n)
    _check_counts(past_hits, past_n)
    if recent_n < min_events or past_n < min_events:
        return None
    if not rise:  # a falling rate of hits is a rising rate of misses
        flipped = proportion_shift(recent_n - recent_hits, recent_n, past_n - past_hits, past_n, rise=True,
                                   alpha=alpha, min_events=min_events)
        assert flipped is not None
        return dataclasses.replace(flipped, figure=1 - flipped.figure, threshold=1 - flipped.threshold)
    null = betabinom(recent_n, past_hits + 0.5, past_n - past_hits + 0.5)
    tails = null.sf(np.arange(recent_n + 1) - 1)  # tails[k] = P(X >= k)
    p_value = float(tails[recent_hits])
    critical = int(np.argmax(tails <= alpha)) if tails[-1] <= alpha else recent_n + 1
    return Check(figure=recent_hits / recent_n, threshold=critical / recent_n,
                 outside=p_value <= alpha, evidence=recent_n, p_value=p_value)


def mean_drop(recent: Sequence[float] | np.ndarray, past: Sequence[float] | np.ndarray, *, alpha: float,
              min_events: int) -> Check | None:
    """Has the mean of per-event values fallen in the recent window? None below ``min_events`` a side.

    Under no change both sides share one distribution, so its variance is estimated from both.
    """
    r, p = np.asarray(recent, dtype=float), np.asarray(past, dtype=float)
    if len(r) < min_events or len(p) < min_events:
        return None
    sd = float(np.concatenate([r, p]).std(ddof=1))
    se = sd * math.sqrt(1 / len(r) + 1 / len(p))
    threshold = float(p.mean()) - float(norm.isf(alpha)) * se
    figure = float(r.mean())
    p_value = float(norm.cdf((figure - float(p.mean())) / se)) if se > 0 else (0.0 if figure < p.mean() else 1.0)
    return Check(figure=figure, threshold=threshold, outside=p_value <= alpha, evidence=len(r), p_value=p_value)


def _check_counts(hits: int, n: int) -> None:
    if not 0 <= hits <= n:
        raise ValueError(f"hits must be within 0..n, got {hits} of {n}")
