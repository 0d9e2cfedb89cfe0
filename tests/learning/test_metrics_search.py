"""Search metrics on hand-computed fixtures: CTR, clicked rank, MRR per kind, NDCG@k."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from visionloop.learning.metrics_search import (
    ALL,
    SearchRecord,
    dcg_at_k,
    evaluate_searches,
    mean_ndcg,
    ndcg_at_k,
)

S = SearchRecord
FIXTURE = [
    S("s1", "concept", [1]),
    S("s2", "concept", [3, 1]),  # first click at rank 3
    S("s3", "concept", []),
    S("s4", "visual", [2, 2]),  # a retried click counts once
    S("s5", "visual", []),
]


def test_hand_computed_per_kind() -> None:
    report = evaluate_searches(FIXTURE, min_count=1)
    concept, visual, everything = report["concept"], report["visual"], report[ALL]
    assert list(report) == ["concept", "visual", ALL]
    assert (concept.n_searches, concept.n_clicks) == (3, 3)
    assert concept.ctr.value == pytest.approx(2 / 3)
    assert concept.mean_clicked_rank.value == pytest.approx(5 / 3)  # ranks 1, 3, 1
    assert concept.mrr.value == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert (visual.ctr.value, visual.mean_clicked_rank.value, visual.mrr.value) == (0.5, 2.0, 0.25)
    assert everything.ctr.value == pytest.approx(3 / 5)
    assert everything.mrr.value == pytest.approx((1 + 1 / 3 + 0.5) / 5)
    assert everything.mean_clicked_rank.value == pytest.approx(7 / 4)


def test_no_searches_and_no_clicks() -> None:
    assert evaluate_searches([])[ALL].ctr.value is None
    unclicked = evaluate_searches([S("s1", "metadata")])["metadata"]
    assert unclicked.ctr.value == 0.0 and unclicked.mrr.value == 0.0
    assert unclicked.mean_clicked_rank.value is None and unclicked.too_few


def test_interval_and_too_few() -> None:
    records = [S(i, "visual", [1 + i % 3] if i % 2 else []) for i in range(40)]
    mrr = evaluate_searches(records, min_count=10)["visual"].mrr
    assert not mrr.too_few and mrr.n == 40 and mrr.low <= mrr.value <= mrr.high


def test_clicks_outside_the_hits_are_refused() -> None:
    with pytest.raises(ValueError, match="rank 0"):
        evaluate_searches([S("s1", "visual", [0])])
    with pytest.raises(ValueError, match="rank 6"):
        evaluate_searches([S("s1", "visual", [6], n_hits=5)])


def test_ndcg_hand_computed_and_as_sklearn() -> None:
    ranked = [3, 2, 0, 1]
    assert dcg_at_k(ranked, 2) == pytest.approx(3 + 2 / np.log2(3))
    ideal = 3 + 2 / np.log2(3) + 1 / np.log2(4)
    assert ndcg_at_k(ranked, 4) == pytest.approx((3 + 2 / np.log2(3) + 1 / np.log2(5)) / ideal)
    for k in (1, 2, 3, 4):
        expected = ndcg_score([ranked], [[4, 3, 2, 1]], k=k)
        assert ndcg_at_k(ranked, k) == pytest.approx(expected)


def test_ndcg_with_items_the_ranking_missed() -> None:
    # Only one of the two relevant items was retrieved, at rank 1.
    assert ndcg_at_k([1, 0, 0], k=3, ideal_relevance=[1, 1]) == pytest.approx(1 / (1 + 1 / np.log2(3)))
    assert ndcg_at_k([0, 0], k=2) is None  # nothing relevant: undefined


def test_mean_ndcg_skips_queries_with_nothing_relevant() -> None:
    estimate = mean_ndcg([[1, 0], [0, 1], [0, 0]], k=2, min_count=1)
    assert estimate.n == 2 and estimate.value == pytest.approx((1 + 1 / np.log2(3)) / 2)
    assert mean_ndcg([]).value is None
    with pytest.raises(ValueError):
        ndcg_at_k([1], k=0)
