"""Search quality from remembered searches and the clicks end users reported on their hits.

Online figures, per query kind ('concept', 'visual', 'metadata', ...) and for "all":
click-through rate (searches with at least one click / searches), mean rank of the clicked hits,
and MRR — the reciprocal rank of the first click, 0 for a search without one, so it moves with
both CTR and position. Clicks are biased by position (see :mod:`.click_model`), so these compare
versions fairly only when both were shown the same way; for benchmarks with graded relevance,
:func:`ndcg_at_k` is the offline measure.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from visionloop.learning.estimates import CONFIDENCE, N_RESAMPLES, Estimate, interval, ratio, resample_counts

MIN_COUNT = 10
ALL = "all"


@dataclass(frozen=True)
class SearchRecord:
    """One remembered search: ``clicks`` are the 1-based ranks of clicked hits, in click order."""

    search_id: Hashable
    kind: str
    clicks: Sequence[int] = ()
    n_hits: int | None = None


@dataclass(frozen=True)
class SearchMetrics:
    kind: str
    n_searches: int
    n_clicks: int  # distinct clicked hits
    ctr: Estimate
    mean_clicked_rank: Estimate  # value None without clicks
    mrr: Estimate
    too_few: bool

    def figures(self) -> dict[str, Estimate]:
        """The figures by name, as :func:`visionloop.learning.promotion.decide` takes them
        (``mean_clicked_rank`` is lower-is-better)."""
        return {"mrr": self.mrr, "ctr": self.ctr, "mean_clicked_rank": self.mean_clicked_rank}


def distinct_clicks(record: SearchRecord) -> list[int]:
    """The record's clicked ranks without repeats (a retried click counts once), validated."""
    seen: dict[int, None] = {}
    for rank in record.clicks:
        if rank < 1 or (record.n_hits is not None and rank > record.n_hits):
            raise ValueError(f"search {record.search_id!r}: click at rank {rank} outside 1..{record.n_hits}")
        seen.setdefault(int(rank), None)
    return list(seen)


def _metrics(kind: str, records: list[SearchRecord], min_count: int, n_resamples: int,
             confidence: float, seed: int) -> SearchMetrics:
    clicks = [distinct_clicks(r) for r in records]
    clicked = np.array([bool(c) for c in clicks], dtype=float)
    rank_sum = np.array([sum(c) for c in clicks], dtype=float)
    n_clicks = np.array([len(c) for c in clicks], dtype=float)
    reciprocal = np.array([1.0 / c[0] if c else 0.0 for c in clicks])
    counts = resample_counts(len(records), n_resamples, seed)
    n = len(records)
    too_few = n < min_count

    def estimate(value: float | None, samples: np.ndarray, behind: int) -> Estimate:
        low, high = interval(samples, confidence) if value is not None else (None, None)
        return Estimate(value, low, high, n=behind, too_few=too_few)

    total_clicks = int(n_clicks.sum())
    boot_clicks = counts @ n_clicks
    boot_rank = np.where(boot_clicks > 0, ratio(counts @ rank_sum, boot_clicks), np.nan)
    return SearchMetrics(
        kind, n, total_clicks,
        ctr=estimate(float(clicked.mean()) if n else None, counts @ clicked / max(n, 1), n),
        mean_clicked_rank=estimate(float(rank_sum.sum() / total_clicks) if total_clicks else None,
                                   boot_rank, total_clicks),
        mrr=estimate(float(reciprocal.mean()) if n else None, counts @ reciprocal / max(n, 1), n),
        too_few=too_few,
    )


def evaluate_searches(
    records: Iterable[SearchRecord],
    *,
    min_count: int = MIN_COUNT,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> dict[str, SearchMetrics]:
    """Figures per query kind (sorted) and for :data:`ALL`; intervals resample searches."""
    records = list(records)
    by_kind: dict[str, list[SearchRecord]] = {}
    for r in records:
        by_kind.setdefault(r.kind, []).append(r)
    out = {kind: _metrics(kind, by_kind[kind], min_count, n_resamples, confidence, seed)
           for kind in sorted(by_kind)}
    out[ALL] = _metrics(ALL, records, min_count, n_resamples, confidence, seed)
    return out


def dcg_at_k(relevance: Sequence[float], k: int) -> float:
    """Discounted cumulative gain of the first ``k`` grades: sum rel_i / log2(i + 1), as sklearn."""
    return float(sum(rel / math.log2(i + 2) for i, rel in enumerate(list(relevance)[:k])))


def ndcg_at_k(ranked_relevance: Sequence[float], k: int = 10,
              ideal_relevance: Sequence[float] | None = None) -> float | None:
    """NDCG@k of a ranking given the graded relevance of each hit in ranked order.

    ``ideal_relevance`` lists the grades of every judged item for the query, so relevant items the
    ranking missed lower the score; without it the ideal is the best order of the hits shown (what
    ``sklearn.metrics.ndcg_score`` computes). None when nothing is relevant: such queries say
    nothing about ranking and are skipped by :func:`mean_ndcg`.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pool = ranked_relevance if ideal_relevance is None else ideal_relevance
    ideal = dcg_at_k(sorted(pool, reverse=True), k)
    if ideal <= 0:
        return None
    return dcg_at_k(ranked_relevance, k) / ideal


def mean_ndcg(
    queries: Iterable[Sequence[float] | tuple[Sequence[float], Sequence[float]]],
    k: int = 10,
    *,
    min_count: int = MIN_COUNT,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Estimate:
    """Mean NDCG@k over queries (each a ranked relevance list, or a (ranked, ideal) pair).

    Queries with nothing relevant are skipped; the interval resamples the remaining queries.
    """
    values = []
    for q in queries:
        ranked, ideal = q if isinstance(q, tuple) else (q, None)
        value = ndcg_at_k(ranked, k, ideal)
        if value is not None:
            values.append(value)
    if not values:
        return Estimate(None, n=0, too_few=True)
    array = np.array(values)
    low, high = interval(resample_counts(len(values), n_resamples, seed) @ array / len(values), confidence)
    return Estimate(float(array.mean()), low, high, n=len(values), too_few=len(values) < min_count)
