"""Click memory: what the users of an app clicked for a query, blended into the ranking at once.

Why: repeated queries dominate search traffic, and a click is the best evidence there is about the
query it was made for. A trained re-ranker needs many searches and a gate; remembering needs
neither, provided a handful of clicks can move a hit but never the whole page.

Evidence. Each remembered search of the query (or of a near-duplicate, or a neighbour: see
:func:`query_weights`) contributes, for each hit a user clicked at rank ``r``, a positive of
``min(r ** eta, 1 / min_propensity)`` — the inverse of the position-based model's examination
probability, so a click from rank 9 says more than one from rank 1 — and, for each hit shown
above the lowest click and not clicked (looked at, under the cascade reading, and passed over),
a negative of ``skip_weight``. Both are multiplied by ``0.5 ** (age / half_life)`` and by the
remembered query's weight. Per end user, a hit's positive is the largest of their clicks and its
negative the largest of their skips: one user clicking a thousand times is one user.

Relevance. Per hit, the posterior mean of a Beta prior (mean ``prior_mean``, ``prior_strength``
pseudo-observations) updated by the summed evidence: ``(a + pos) / (a + b + pos + neg)``.

Blend. ``score + strength * spread * (posterior - prior_mean)``, ``spread`` the standard deviation
of the candidates' scores (1 when they are all equal), over the whole candidate list so that every
page of one search agrees. A hit without evidence keeps its score; a skipped one sinks a little.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from visionloop.learning.params import Range, validate

DAY = 86_400.0


@dataclass(frozen=True)
class Observation:
    """A hit of a remembered search, clicked or skipped (shown above a click, not clicked)."""

    input_id: str
    rank: int
    clicked: bool
    user: str  # end user (else session, else search): whose evidence it is, for the per-user cap
    age_seconds: float
    weight: float = 1.0  # how much the remembered query counts for this one (1: the same query)


class ClickMemory(BaseEstimator):
    """Per-hit relevance from position-bias-corrected, decayed, per-user-capped clicks; see the module."""

    _constraints: ClassVar[dict[str, Range]] = {
        "eta": Range(0, 5),
        "min_propensity": Range(0, 1, open_low=True),
        "half_life_days": Range(0, open_low=True),
        "prior_mean": Range(0, 1, open_low=True),
        "prior_strength": Range(0, open_low=True),
        "skip_weight": Range(0),
        "strength": Range(0),
    }

    def __init__(self, *, eta: float = 1.0, min_propensity: float = 0.05, half_life_days: float = 30.0,
                 prior_mean: float = 0.1, prior_strength: float = 2.0, skip_weight: float = 0.3,
                 strength: float = 3.0) -> None:
        self.eta = eta
        self.min_propensity = min_propensity
        self.half_life_days = half_life_days
        self.prior_mean = prior_mean
        self.prior_strength = prior_strength
        self.skip_weight = skip_weight
        self.strength = strength

    def fit(self, observations: Iterable[Observation]) -> ClickMemory:
        """Sum each hit's evidence over users, each user's capped at their strongest click and skip."""
        validate(self.get_params(), self._constraints)
        best: dict[tuple[str, str, bool], float] = {}
        for o in observations:
            if o.rank < 1:
                raise ValueError(f"hit {o.input_id!r}: rank must be >= 1, got {o.rank}")
            decay = 0.5 ** (max(o.age_seconds, 0.0) / (self.half_life_days * DAY))
            size = min(o.rank ** self.eta, 1.0 / self.min_propensity) if o.clicked else self.skip_weight
            key = (o.input_id, o.user, o.clicked)
            best[key] = max(best.get(key, 0.0), size * decay * o.weight)
        self.positive_: dict[str, float] = {}
        self.negative_: dict[str, float] = {}
        for (input_id, _, clicked), value in best.items():
            side = self.positive_ if clicked else self.negative_
            side[input_id] = side.get(input_id, 0.0) + value
        return self

    def relevance(self, input_ids: Sequence[str]) -> np.ndarray:
        """Posterior mean relevance of each hit (``prior_mean`` for a hit nobody clicked or skipped)."""
        check_is_fitted(self, "positive_")
        a = self.prior_mean * self.prior_strength
        pos = np.array([self.positive_.get(i, 0.0) for i in input_ids])
        neg = np.array([self.negative_.get(i, 0.0) for i in input_ids])
        return (a + pos) / (self.prior_strength + pos + neg)

    def rerank(self, input_ids: Sequence[str], scores: Sequence[float]) -> np.ndarray:
        """The candidates' scores with the memory blended in (see the module docstring)."""
        base = np.asarray(scores, dtype=np.float64)
        if len(base) != len(input_ids):
            raise ValueError(f"{len(input_ids)} hits but {len(base)} scores")
        if not len(base) or not (self.positive_ or self.negative_):
            return base
        spread = float(base.std()) or 1.0
        return base + self.strength * spread * (self.relevance(input_ids) - self.prior_mean)

    @property
    def n_hits_(self) -> int:
        """Hits with any evidence."""
        check_is_fitted(self, "positive_")
        return len(set(self.positive_) | set(self.negative_))


def query_weights(similarities: Sequence[float], *, same: float = 0.97, floor: float = 0.5,
                  neighbours: int = 10, neighbour_weight: float = 0.3) -> np.ndarray:
    """How much each remembered query's clicks count for a query, from their cosine similarities.

    At ``same`` or above a remembered query is the same query (a near-duplicate image: weight 1).
    Below, the ``neighbours`` most similar ones above ``floor`` vote, with a weight rising linearly
    from 0 at ``floor`` to ``neighbour_weight`` at ``same``: what users clicked for similar queries
    is evidence, weaker, for a query nobody asked before (neighbourhood re-ranking).
    """
    sims = np.asarray(similarities, dtype=np.float64)
    weights = np.where(sims >= same, 1.0, 0.0)
    if neighbours <= 0 or neighbour_weight <= 0 or not len(sims) or same <= floor:
        return weights
    below = np.flatnonzero((sims < same) & (sims > floor))
    nearest = below[np.argsort(-sims[below], kind="stable")[:neighbours]]
    weights[nearest] = neighbour_weight * (sims[nearest] - floor) / (same - floor)
    return weights

