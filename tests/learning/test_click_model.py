"""Click model: position bias recovered from randomised rankings, IPS re-ranking that generalises."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from visionloop.learning.click_model import (
    ClickModel,
    Hit,
    SearchSession,
    clicks_as_weak_labels,
    propensity,
)
from visionloop.learning.labels import Vote
from visionloop.learning.metrics_search import ndcg_at_k

D = 16
W_TRUE = np.r_[np.full(4, 4.0), np.full(D - 4, 0.25)]  # what users care about: 4 dimensions
GRADES = np.array([0.05, 0.3, 0.6, 0.9])  # P(click | examined) per relevance grade


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def grades(q: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Graded relevance 0..3 from the users' hidden similarity, by quantile within the pool."""
    s = (unit(vectors) * unit(q)) @ W_TRUE
    return np.digitize(s, np.quantile(s, [0.7, 0.85, 0.95]))


def simulate(seed: int, n: int, eta: float = 1.0, shuffle: bool = False,
             docs: np.ndarray | None = None) -> tuple[list[SearchSession], np.ndarray]:
    """Visual searches showing the top 20 by cosine; clicks follow the position-based model."""
    rng = np.random.default_rng(seed)
    docs = np.random.default_rng(99).normal(size=(600, D)) if docs is None else docs
    sessions = []
    for i in range(n):
        q = rng.normal(size=D)
        cos = unit(docs) @ unit(q)
        shown = np.argsort(-cos)[:20]
        if shuffle:  # randomised rankings identify position bias
            shown = rng.permutation(shown)
        p_click = propensity(np.arange(1, 21), eta) * GRADES[grades(q, docs[shown])]
        clicks = [r + 1 for r in np.flatnonzero(rng.random(20) < p_click)]
        hits = [Hit(f"d{j}", float(cos[j]), docs[j]) for j in shown]
        sessions.append(SearchSession(i, "visual", f"q{seed}-{i}", hits, clicks, q, end_user=f"u{i % 7}"))
    return sessions, docs


def test_propensity_of_the_position_based_model() -> None:
    assert propensity(np.array([1, 2, 4]), 1.0).tolist() == [1.0, 0.5, 0.25]
    assert propensity(3, 0.0) == 1.0


@pytest.mark.parametrize("eta", [0.5, 1.5])
def test_position_bias_is_recovered_from_randomised_rankings(eta: float) -> None:
    sessions, _ = simulate(seed=1, n=1000, eta=eta, shuffle=True)
    model = ClickModel(min_sessions=10**6).fit(sessions)
    assert model.eta_ == pytest.approx(eta, abs=0.15)
    assert model.propensities_[1] == pytest.approx(2.0 ** -model.eta_)


def test_reranking_lifts_held_out_ndcg_on_new_queries() -> None:
    sessions, docs = simulate(seed=0, n=300)
    model = ClickModel().fit(sessions)
    assert model.reranking_ and model.validation_["z"] >= 1.64 and model.validation_["n_sessions"] > 150
    assert model.weights_[:4].min() > model.weights_[4:].max()  # it found the dimensions that matter
    unbiased = ClickModel(min_propensity=1.0).fit(sessions)  # every click counts 1: no IPS

    rng = np.random.default_rng(123)
    baseline, learned, naive = [], [], []
    for _ in range(150):  # queries never seen in training, re-ranking the top 50 by cosine
        q = rng.normal(size=D)
        pool = np.argsort(-(unit(docs) @ unit(q)))[:50]
        g = grades(q, docs[pool])
        baseline.append(ndcg_at_k(list(g), 10))
        learned.append(ndcg_at_k(list(g[np.argsort(-model.score(q, docs[pool]), kind="stable")]), 10))
        naive.append(ndcg_at_k(list(g[np.argsort(-unbiased.score(q, docs[pool]), kind="stable")]), 10))
    assert np.mean(learned) > np.mean(baseline) + 0.2
    assert np.mean(learned) > np.mean(naive) + 0.05  # correcting position bias matters


def test_no_change_before_enough_evidence() -> None:
    sessions, docs = simulate(seed=2, n=60)
    model = ClickModel(min_sessions=1000).fit(sessions)
    assert not model.reranking_ and model.weights_ is None
    assert model.reason_.endswith("fewer than 1000")
    q = np.ones(D)
    assert np.allclose(model.score(q, docs[:5]), unit(docs[:5]) @ unit(q))  # plain cosine


def test_clicks_unrelated_to_content_are_not_adopted() -> None:
    """Clicks that depend on position only: no re-weighting can help, and none is adopted."""
    sessions, _ = simulate(seed=3, n=200)
    rng = np.random.default_rng(4)
    noise = [SearchSession(s.search_id, s.kind, s.key, s.hits,
                           [r for r in range(1, 21) if rng.random() < 0.3 * propensity(r, 1.0)], s.query_vector)
             for s in sessions]
    model = ClickModel().fit(noise)
    assert not model.reranking_ and "gain z" in model.reason_ and model.weights_ is None
    assert model.eta_ == pytest.approx(1.0, abs=0.2)


def test_no_sessions_and_no_clicks() -> None:
    model = ClickModel().fit([])
    assert model.eta_ == 1.0 and model.fit_iterations_ == 0 and not model.reranking_
    sessions, _ = simulate(seed=5, n=5)
    unclicked = [SearchSession(s.search_id, s.kind, s.key, s.hits) for s in sessions]
    assert ClickModel().fit(unclicked).eta_ == 1.0  # no evidence: the prior


def test_artifact_round_trip_without_pickle() -> None:
    sessions, docs = simulate(seed=0, n=300)
    model = ClickModel().fit(sessions)
    data = model.to_bytes()
    np.load(io.BytesIO(data), allow_pickle=False).close()
    again = ClickModel.from_bytes(data)
    assert again.get_params() == model.get_params() and again.eta_ == model.eta_
    q = np.ones(D)
    assert np.array_equal(again.score(q, docs[:10]), model.score(q, docs[:10]))
    identity = ClickModel.from_bytes(ClickModel().fit([]).to_bytes())
    assert identity.weights_ is None and not identity.reranking_
    with pytest.raises(ValueError, match="not a visionloop.click_model/1 artifact"):
        bad = io.BytesIO()
        np.savez(bad, meta=np.frombuffer(b'{"format": "x"}', dtype=np.uint8))
        ClickModel.from_bytes(bad.getvalue())


def test_contract_errors() -> None:
    with pytest.raises(NotFittedError):
        ClickModel().score(np.ones(2), np.ones((1, 2)))
    with pytest.raises(ValueError, match="penalty must be > 0"):
        ClickModel(penalty=0.0).fit([])
    hits = [Hit("a", 0.9, np.ones(2)), Hit("b", 0.8, np.ones(2))]
    with pytest.raises(ValueError, match="rank 3 outside 1..2"):
        ClickModel().fit([SearchSession("s", "visual", "k", hits, [3], np.ones(2))])
    with pytest.raises(ValueError, match="dimensions"):
        ClickModel().fit([]).score(np.ones(3), np.ones((1, 2)))
    mixed = [SearchSession(i, "visual", "k", [Hit("a", 0.9, np.ones(2)), Hit("b", 0.8, np.ones(3))], [1],
                           np.ones(2)) for i in range(3)]
    with pytest.raises(ValueError, match="vectors of \\[2, 3\\] dimensions"):
        ClickModel(min_sessions=1).fit(mixed)


def test_clicks_as_weak_labels() -> None:
    hits = [Hit("in1", 0.9), Hit("in2", 0.8), Hit("in3", 0.7)]
    sessions = [
        SearchSession("s1", "concept", "dog", hits, [2, 2, 3], end_user="alice"),
        SearchSession("s2", "visual", "in9", hits, [1], end_user="bob"),  # no concept to label
        SearchSession("s3", "concept", "cat", hits, [], end_user="bob"),  # skips are no votes
    ]
    assert clicks_as_weak_labels(sessions) == [
        Vote(("in2", "dog"), "alice", True, 0.2), Vote(("in3", "dog"), "alice", True, 0.2),
    ]
    assert clicks_as_weak_labels([]) == []


def test_repeated_queries_are_cross_fitted_by_query() -> None:
    """Twelve queries searched fifty times each, every one judged by its own hidden preference:
    weights fitted on some of a query's searches re-rank its other searches better, and say nothing
    about a new query. Cross-fitting by search adopts them (z = 2.2 measured); by query it must not."""
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(300, D))
    queries = [rng.normal(size=D) for _ in range(12)]
    preferences = []
    for _ in queries:
        w = np.full(D, 0.25)
        w[rng.choice(D, 2, replace=False)] = 6.0
        preferences.append(w)
    sessions = []
    for i in range(600):
        j = i % len(queries)
        cos = unit(docs) @ unit(queries[j])
        shown = np.argsort(-cos)[:20]
        liked = (unit(docs[shown]) * unit(queries[j])) @ preferences[j]
        grade = np.digitize(liked, np.quantile(liked, [0.5, 0.75, 0.9]))
        clicks = [r + 1 for r in np.flatnonzero(rng.random(20) < propensity(np.arange(1, 21), 1.0) * GRADES[grade])]
        hits = [Hit(f"d{k}", float(cos[k]), docs[k]) for k in shown]
        sessions.append(SearchSession(i, "visual", f"q{j}", hits, clicks, queries[j]))
    model = ClickModel().fit(sessions)
    assert not model.reranking_ and "gain z" in model.reason_
    assert model.validation_["n_queries"] == 12


def test_query_folds_keep_a_query_on_one_side() -> None:
    from visionloop.learning.click_model import _query_folds

    sessions = [SearchSession(i, "visual", f"q{i % 7}", [Hit("a", 1.0)]) for i in range(70)]
    folds = _query_folds(sessions, 5, 0)
    for key in range(7):
        assert len({int(folds[i]) for i in range(70) if i % 7 == key}) == 1
    assert set(folds.tolist()) == set(range(5))  # 7 queries over 5 folds: none left empty
