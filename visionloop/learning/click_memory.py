"""Click memory: what the users of an app clicked for a query, blended into the ranking at once.

Why: repeated queries dominate search traffic, and a click is the best evidence there is about the
query it was made for. A trained re-ranker needs many searches and a gate; remembering needs
neither, provided a handful of clicks can move a hit but never the whole page.

Evidence, under the position-based model (:mod:`.click_model`): a hit shown at rank ``r`` was
looked at with probability ``theta_r = r ** -eta``, and a looked-at hit is clicked with probability
its relevance. So a hit's relevance is estimated as its clicks over its *exposure*, the expected
number of times it was looked at: a clicked hit was looked at (exposure 1); one shown above the
lowest click of its search and passed over was probably looked at too (exposure at least
``skip_exposure``: skips above a click are weak negatives); one below it, ``theta_r``. Only searches
with a click are read: a search nobody clicked says more about the user than about the hits.

Each piece of evidence is multiplied by ``0.5 ** (age / half_life)`` and by the remembered query's
weight (1 for the same query or a near-duplicate, less for a neighbour: :func:`query_weights`).
Per end user, a hit's clicks and exposure are each the largest of theirs, so one user clicking a
thousand times is one user. Relevance is the posterior mean of a Beta prior (mean ``prior_mean``,
``prior_strength`` pseudo-observations): ``(a + clicks) / (a + b + exposure)``, which clicks over
little exposure (from low ranks) raise the most.

Blend. ``score + strength * spread * (relevance - prior_mean)``, ``spread`` the standard deviation
of the candidates' scores (1 when they are all equal), over the whole candidate list so that every
page of one search agrees. A hit without evidence keeps its score; evidence moves a hit by at most
``strength * prior_mean`` spreads down and ``strength * (1 - prior_mean)`` up, however much there is.

Relevance feedback. Hits never shown have no evidence, yet those that look like what users
clicked for this very query are likely what they want (Rocchio's relevance feedback): with the
candidates' embeddings, ``similarity_strength * spread`` times the standardised similarity of each
candidate to the clicked hits' mean (weighted by how far their relevance rose above the prior) is
added too, in proportion to that rise until it is worth ``similarity_evidence`` sure clicks. Only
the query's own clicks (weight 1) make that direction: a neighbour's clicks would pull it towards
the neighbour.
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
    """A hit shown by a remembered search that had a click: clicked or not, above its lowest click or not."""

    input_id: str
    rank: int
    clicked: bool
    user: str  # end user (else session, else search): whose evidence it is, for the per-user cap
    age_seconds: float
    weight: float = 1.0  # how much the remembered query counts for this one (1: the same query)
    above_click: bool = False  # shown above the search's lowest click


class ClickMemory(BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no type hints: BaseEstimator is Any
    """Per-hit relevance from position-bias-corrected, decayed, per-user-capped clicks; see the module."""

    _constraints: ClassVar[dict[str, Range]] = {
        "eta": Range(0, 5),
        "skip_exposure": Range(0, 1),
        "half_life_days": Range(0, open_low=True),
        "prior_mean": Range(0, 1, open_low=True),
        "prior_strength": Range(0, open_low=True),
        "strength": Range(0),
        "similarity_strength": Range(0),
        "similarity_evidence": Range(0, open_low=True),
    }

    def __init__(self, *, eta: float = 1.0, skip_exposure: float = 0.5, half_life_days: float = 30.0,
                 prior_mean: float = 0.3, prior_strength: float = 2.0, strength: float = 10.0,
                 similarity_strength: float = 2.5, similarity_evidence: float = 2.0) -> None:
        self.eta = eta
        self.skip_exposure = skip_exposure
        self.half_life_days = half_life_days
        self.prior_mean = prior_mean
        self.prior_strength = prior_strength
        self.strength = strength
        self.similarity_strength = similarity_strength
        self.similarity_evidence = similarity_evidence

    def fit(self, observations: Iterable[Observation]) -> ClickMemory:
        """Sum each hit's clicks and exposure over users, each user's capped at their largest."""
        validate(self.get_params(), self._constraints)
        best: dict[tuple[str, str], tuple[float, float]] = {}
        self.own_clicks_: set[str] = set()  # hits clicked for this very query (weight 1)
        for o in observations:
            if o.rank < 1:
                raise ValueError(f"hit {o.input_id!r}: rank must be >= 1, got {o.rank}")
            weight = o.weight * 0.5 ** (max(o.age_seconds, 0.0) / (self.half_life_days * DAY))
            seen = o.rank ** -self.eta
            exposure = 1.0 if o.clicked else max(seen, self.skip_exposure) if o.above_click else seen
            if o.clicked and o.weight >= 1:
                self.own_clicks_.add(o.input_id)
            clicks, shown = best.get((o.input_id, o.user), (0.0, 0.0))
            best[(o.input_id, o.user)] = (max(clicks, weight * o.clicked), max(shown, weight * exposure))
        self.clicks_: dict[str, float] = {}
        self.exposure_: dict[str, float] = {}
        for (input_id, _), (clicks, shown) in best.items():
            self.clicks_[input_id] = self.clicks_.get(input_id, 0.0) + clicks
            self.exposure_[input_id] = self.exposure_.get(input_id, 0.0) + shown
        return self

    def relevance(self, input_ids: Sequence[str]) -> np.ndarray:
        """Posterior mean relevance of each hit (``prior_mean`` for a hit never shown to a clicking user)."""
        check_is_fitted(self, "clicks_")
        a = self.prior_mean * self.prior_strength
        clicks = np.array([self.clicks_.get(i, 0.0) for i in input_ids])
        exposure = np.array([self.exposure_.get(i, 0.0) for i in input_ids])
        return (a + clicks) / (self.prior_strength + exposure)

    def rerank(self, input_ids: Sequence[str], scores: Sequence[float], vectors: np.ndarray | None = None
               ) -> np.ndarray:
        """The candidates' scores with the memory blended in; ``vectors`` (n, d), the candidates' unit
        embeddings (zero rows where unknown), add the relevance feedback (see the module docstring)."""
        base = np.asarray(scores, dtype=np.float64)
        if len(base) != len(input_ids) or (vectors is not None and len(vectors) != len(input_ids)):
            raise ValueError(f"{len(input_ids)} hits but {len(base)} scores"
                             + ("" if vectors is None else f" and {len(vectors)} vectors"))
        if not len(base) or not self.exposure_:
            return base
        spread = float(base.std()) or 1.0
        relevance = self.relevance(input_ids)
        out = base + self.strength * spread * (relevance - self.prior_mean)
        lift = np.array([r - self.prior_mean if i in self.own_clicks_ else 0.0
                         for i, r in zip(input_ids, relevance, strict=True)]).clip(min=0)
        if vectors is None or self.similarity_strength <= 0 or not lift.any():
            return out
        direction = lift @ np.asarray(vectors, dtype=np.float64)
        similarity = np.asarray(vectors, dtype=np.float64) @ (direction / (np.linalg.norm(direction) or 1.0))
        evidence = min(1.0, float(lift.sum()) / (1 - self.prior_mean) / self.similarity_evidence)  # grows with it
        weight = self.similarity_strength * spread * evidence
        return out + weight * (similarity - float(similarity.mean())) / (similarity.std() or 1.0)


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

