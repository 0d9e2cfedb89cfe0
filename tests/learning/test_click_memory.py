"""The click memory's scoring on hand-computed cases: IPS, per-user caps, skips, decay, smoothing, neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.learning.click_memory import DAY, ClickMemory, Observation, query_weights


def memory(*observations: Observation, **params: float) -> ClickMemory:
    """Round parameters, so the figures below can be checked by hand."""
    fixed = {"prior_mean": 0.2, "prior_strength": 2.0, "strength": 3.0, "similarity_strength": 0.0} | params
    return ClickMemory(**fixed).fit(observations)


def test_relevance_is_clicks_over_exposure_smoothed_by_the_prior() -> None:
    m = memory(Observation("a", 9, True, "u", 0.0), Observation("b", 4, False, "u", 0.0, above_click=True),
               Observation("c", 4, False, "v", 0.0), Observation("d", 1, False, "v", 0.0, above_click=True))
    # a clicked hit was looked at; one passed over above a click at least half the time; below, theta_r
    assert m.clicks_ == {"a": 1.0, "b": 0.0, "c": 0.0, "d": 0.0}
    assert m.exposure_ == {"a": 1.0, "b": 0.5, "c": 0.25, "d": 1.0}
    # Beta prior of mean 0.2 and strength 2: (0.4 + clicks) / (2 + exposure)
    assert m.relevance(["a", "b", "c", "d", "never"]) == pytest.approx([1.4 / 3, 0.4 / 2.5, 0.4 / 2.25, 0.4 / 3, 0.2])


def test_a_click_from_a_low_rank_says_more_than_one_from_the_top() -> None:
    def after_five_searches(rank: int) -> float:
        seen = [Observation("a", rank, False, f"u{k}", 0.0) for k in range(4)]
        return float(memory(Observation("a", rank, True, "v", 0.0), *seen).relevance(["a"])[0])

    assert after_five_searches(9) > after_five_searches(1)


def test_one_user_counts_once_per_hit_however_often_they_click() -> None:
    many = [Observation("a", 3, True, "u", 0.0)] * 1000 + [Observation("a", 5, False, "u", 0.0)]
    assert (memory(*many).clicks_, memory(*many).exposure_) == ({"a": 1.0}, {"a": 1.0})
    assert memory(*many, Observation("a", 3, True, "w", 0.0)).clicks_ == {"a": 2.0}


def test_evidence_halves_every_half_life_and_counts_by_query_weight() -> None:
    old = memory(Observation("a", 4, True, "u", 60 * DAY), half_life_days=30.0)
    assert (old.clicks_, old.exposure_) == ({"a": pytest.approx(0.25)}, {"a": pytest.approx(0.25)})
    assert memory(Observation("a", 4, True, "u", 0.0, weight=0.3)).clicks_ == {"a": pytest.approx(0.3)}


def test_rerank_moves_clicked_hits_by_the_spread_of_scores_and_leaves_others() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    m = memory(Observation("d", 4, True, "u", 0.0), Observation("a", 1, False, "u", 0.0, above_click=True),
               strength=3.0)
    got = m.rerank(["a", "b", "c", "d"], scores)
    spread = scores.std()
    assert got[1:3] == pytest.approx(scores[1:3])
    assert got[3] == pytest.approx(0.6 + 3 * spread * (1.4 / 3 - 0.2))
    assert got[0] == pytest.approx(0.9 + 3 * spread * (0.4 / 3 - 0.2)) and got[0] < 0.9
    many = memory(*(Observation("a", 1, False, f"u{k}", 0.0, above_click=True) for k in range(1000)))
    assert many.rerank(["a", "b"], [0.9, 0.8])[0] >= 0.9 - 3 * 0.05 * 0.2  # at most strength * prior_mean down


def test_rerank_of_equal_scores_and_of_no_evidence() -> None:
    m = memory(Observation("b", 2, True, "u", 0.0))
    assert np.argmax(m.rerank(["a", "b"], [1.0, 1.0])) == 1
    assert memory().rerank(["a"], [0.5]) == pytest.approx([0.5])
    with pytest.raises(ValueError, match="2 hits but 1 scores"):
        m.rerank(["a", "b"], [1.0])


def test_hits_like_the_ones_clicked_for_the_query_rise_though_never_shown() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.1, 0.995]])
    own = memory(Observation("b", 2, True, "u", 0.0), similarity_strength=3.0, similarity_evidence=0.5)
    got = own.rerank(["a", "b", "c", "d"], [0.9, 0.8, 0.7, 0.6], vectors)
    assert np.argsort(-got).tolist() == [1, 3, 2, 0]  # d, then c, look like the clicked b
    neighbours = memory(Observation("b", 2, True, "u", 0.0, weight=0.5), similarity_strength=3.0)
    assert neighbours.rerank(["a", "b", "c", "d"], [0.9, 0.8, 0.7, 0.6], vectors)[3] == pytest.approx(0.6)


def test_parameters_are_validated_at_fit() -> None:
    with pytest.raises(ValueError, match="half_life_days must be > 0"):
        memory(half_life_days=0.0)
    with pytest.raises(ValueError, match="rank must be >= 1"):
        memory(Observation("a", 0, True, "u", 0.0))


def test_query_weights_same_query_and_neighbours() -> None:
    sims = [0.99, 0.97, 0.9, 0.6, 0.4, 0.8]
    w = query_weights(sims, same=0.97, floor=0.5, neighbours=2, neighbour_weight=0.3)
    assert w[:2] == pytest.approx([1.0, 1.0])
    assert w[2] == pytest.approx(0.3 * 0.4 / 0.47) and w[5] == pytest.approx(0.3 * 0.3 / 0.47)
    assert w[3] == 0.0 and w[4] == 0.0  # beyond the two nearest; below the floor
    assert query_weights(sims, neighbour_weight=0.0).tolist() == [1.0, 1.0, 0, 0, 0, 0]
