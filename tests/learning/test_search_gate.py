"""The gate for trained search rankings: a time split, seen and unseen queries judged apart."""

from __future__ import annotations

import pytest

from visionloop.learning.estimates import Estimate
from visionloop.learning.search_gate import gate, time_split


def figures(seen: float | None, unseen: float | None, n: int = 20) -> dict[str, Estimate]:
    return {"seen": Estimate(seen, n=n, too_few=seen is None), "unseen": Estimate(unseen, n=n, too_few=unseen is None)}


def test_time_split_keeps_the_latest_sessions_and_tells_seen_queries_from_new_ones() -> None:
    sessions = list(range(10))
    keys = ["a", "b", "a", "c", "b", "a", "d", "e", "a", "f"]
    train, seen, unseen = time_split(sessions, keys, fraction=0.3)
    assert (train, seen, unseen) == ([0, 1, 2, 3, 4, 5, 6], [8], [7, 9])
    with pytest.raises(ValueError, match="fraction"):
        time_split(sessions, keys, fraction=1.0)


def test_a_gain_on_seen_queries_is_adopted_when_new_queries_hold() -> None:
    decision = gate(figures(1.0, 1.0), figures(1.2, 0.995), metric="ips_dcg")
    assert decision.promote and decision.reason.startswith("adopted: seen queries' ips_dcg rose")
    assert "seen queries' ips_dcg 1.000 -> 1.200 (+20.0% on 20 sessions)" in decision.reason


def test_a_ranking_that_hurts_new_queries_is_refused_whatever_it_gains_on_seen_ones() -> None:
    decision = gate(figures(1.0, 1.0), figures(1.5, 0.98), metric="ips_dcg")
    assert not decision.promote
    assert decision.reason.startswith("refused: unseen queries' ips_dcg fell by more than 1%")


def test_no_gain_is_refused_and_thin_groups_decide_nothing() -> None:
    assert not gate(figures(1.0, 1.0), figures(1.0, 1.0), metric="ips_dcg").promote
    thin = gate(figures(1.0, None), figures(1.1, None), metric="ips_dcg")
    assert thin.promote and "unseen queries: too few later sessions to judge" in thin.reason
    assert not gate(figures(None, None), figures(None, None), metric="ips_dcg").promote
