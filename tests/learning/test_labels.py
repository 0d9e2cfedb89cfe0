"""Votes -> labels: dedup, reliability, weighted resolution, with hand-computed fixtures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from visionloop.learning.labels import Vote, aggregate, dedup_votes, down_weighted, rebuild_labels

PRIOR_MEAN = 0.8  # DEFAULT_PRIOR = Beta(8, 2)
PRIOR_LOGODDS = math.log(0.8 / 0.2)


def test_no_votes() -> None:
    agg = aggregate([])
    assert agg.labels == {} and agg.users == {} and agg.converged


def test_single_vote_gets_the_prior_confidence() -> None:
    agg = aggregate([Vote(("in1", "dog"), "alice", True)])
    label = agg.labels[("in1", "dog")]
    assert (label.value, label.n_votes, label.n_users) == (True, 1, 1)
    assert label.confidence == pytest.approx(PRIOR_MEAN)  # sigmoid(log(0.8/0.2))
    user = agg.users["alice"]
    assert (user.reliability, user.n_votes, user.n_shared) == (pytest.approx(PRIOR_MEAN), 1, 0)


def test_unanimous_users_are_confident_and_trusted() -> None:
    votes = [Vote(item, user, True) for item in ("a", "b", "c") for user in ("u1", "u2", "u3")]
    agg = aggregate(votes)
    assert all(lab.value and lab.n_votes == 3 and lab.n_users == 3 for lab in agg.labels.values())
    assert all(lab.confidence > 0.99 for lab in agg.labels.values())
    # Three shared "yes" on present items: sensitivity (8 + 3) / (10 + 3); no absent item was
    # seen, so specificity stays at the prior mean. Reliability is their average.
    for u in agg.users.values():
        assert u.sensitivity == pytest.approx(11 / 13, abs=1e-3)
        assert u.specificity == pytest.approx(PRIOR_MEAN, abs=1e-3)
        assert u.reliability == pytest.approx((11 / 13 + PRIOR_MEAN) / 2, abs=1e-3) and u.n_shared == 3
        assert u.weight == pytest.approx(math.log(u.reliability / (1 - u.reliability)))
    assert agg.class_prior == 0.99  # every item present: the estimate sits at its upper bound


def test_a_lone_correction_wins_whatever_the_other_items_say() -> None:
    votes = [Vote(i, "u1", True) for i in range(20)] + [Vote("x", "u2", False)]
    assert aggregate(votes).labels["x"].value is False  # no class prior overrides it


def test_identical_retries_count_once() -> None:
    vote = Vote(("in1", "dog"), "alice", 1.0)
    kept = dedup_votes([vote, vote, vote])
    assert kept == [Vote(("in1", "dog"), "alice", True, 1.0)]
    assert aggregate([vote, vote]).labels[("in1", "dog")].n_votes == 1


def test_a_users_latest_vote_supersedes_and_strong_beats_weak() -> None:
    votes = [
        Vote("x", "alice", True), Vote("x", "alice", False),  # a correction: latest wins
        Vote("y", "bob", False), Vote("y", "bob", True, weight=0.2),  # a later click is weaker
    ]
    assert dedup_votes(votes) == [Vote("x", "alice", False), Vote("y", "bob", False)]


def test_anonymous_votes_collapse_per_label_and_use_the_fixed_reliability() -> None:
    votes = [Vote("x", None, True), Vote("x", None, True), Vote("y", None, False)]
    agg = aggregate(votes, anonymous_reliability=0.7)
    assert agg.labels["x"].n_votes == 1
    assert agg.labels["x"].confidence == pytest.approx(0.7)
    assert agg.labels["y"].value is False
    assert agg.users[None].reliability == 0.7


def test_conflicting_pair_is_a_tie_resolved_by_the_latest_vote() -> None:
    agg = aggregate([Vote("x", "u1", True), Vote("x", "u2", False)])
    label = agg.labels["x"]
    assert (label.value, label.confidence, label.n_votes, label.n_users) == (False, 0.5, 2, 2)


def test_conflicting_users_the_consistent_majority_wins() -> None:
    # u1, u2, u3 agree on 40 items (20 present, 20 absent); u4 contradicts every answer.
    votes = [Vote(i, u, i < 20) for i in range(40) for u in ("u1", "u2", "u3")]
    votes += [Vote(i, "u4", i >= 20) for i in range(40)]
    agg = aggregate(votes)
    assert [lab.value for lab in agg.labels.values()] == [True] * 20 + [False] * 20
    liar = agg.users["u4"]
    assert liar.sensitivity < 0.5 and liar.specificity < 0.5 and liar.weight == 0.0
    assert agg.users["u1"].reliability > PRIOR_MEAN


def test_a_liar_seen_only_on_present_items_keeps_an_unknown_specificity() -> None:
    # Two rates: u4 says "no" to ten present items. That shows a low sensitivity; how they answer
    # about absent items nobody can tell, so specificity stays at the prior.
    votes = [Vote(i, u, True) for i in range(10) for u in ("u1", "u2", "u3")]
    votes += [Vote(i, "u4", False) for i in range(10)]
    liar = aggregate(votes).users["u4"]
    assert liar.sensitivity == pytest.approx(8 / 20, abs=1e-3)  # Beta(8, 2) + 0 of 10
    assert liar.specificity == pytest.approx(PRIOR_MEAN, abs=1e-3)
    assert liar.weight < PRIOR_LOGODDS / 2


def test_down_weighted_user_is_not_inverted() -> None:
    """A user found unreliable loses influence; their answers are not read as the opposite."""
    votes = [Vote(i, u, i < 20) for i in range(40) for u in ("u1", "u2")]
    votes += [Vote(i, "liar", i >= 20) for i in range(40)]
    votes += [Vote("solo", "liar", True)]  # nobody else judged it
    label = aggregate(votes).labels["solo"]
    assert label.value is True and label.confidence == 0.5  # zero weight, not a "False" verdict


def test_weights_scale_the_log_odds() -> None:
    agg = aggregate([Vote("x", "u1", True, weight=0.5)])
    expected = 1 / (1 + math.exp(-0.5 * PRIOR_LOGODDS))
    assert agg.labels["x"].confidence == pytest.approx(expected)


def test_invalid_votes_are_refused() -> None:
    with pytest.raises(ValueError, match="true/false or 1/0"):
        aggregate([Vote("x", "u1", 0.7)])
    with pytest.raises(ValueError, match="positive"):
        aggregate([Vote("x", "u1", True, weight=0.0)])


def simulate(seed: int, n_users: int = 50, n_items: int = 300, per_item: int = 5,
             malicious: float = 0.2, error: float = 0.1) -> tuple[np.ndarray, list[Vote], set[int]]:
    rng = np.random.default_rng(seed)
    truth = rng.random(n_items) < 0.5
    bad = set(range(int(n_users * malicious)))
    votes = []
    for i in range(n_items):
        for u in rng.choice(n_users, per_item, replace=False):
            honest = bool(truth[i]) if rng.random() >= error else not truth[i]
            votes.append(Vote(i, f"u{u}", (not truth[i]) if u in bad else honest))
    return truth, votes, bad


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_malicious_fifth_of_users_is_neutralised(seed: int) -> None:
    truth, votes, bad = simulate(seed)
    agg = aggregate(votes)
    accuracy = np.mean([agg.labels[i].value == truth[i] for i in range(len(truth))])
    majority = np.mean([(sum(1 if v.label else -1 for v in votes if v.item == i) > 0) == truth[i]
                        for i in range(len(truth))])
    assert accuracy >= 0.95 > majority
    assert all(agg.users[f"u{u}"].reliability < 0.5 for u in bad)
    assert all(agg.users[f"u{u}"].reliability > 0.7 for u in range(50) if u not in bad)


def test_rebuild_is_deterministic_whatever_the_read_order() -> None:
    events = [
        {"seq": 1, "user": "u1", "input": "in1", "concepts": {"dog": 1.0, "cat": 0.0}},
        {"seq": 2, "user": "u2", "input": "in1", "concepts": {"dog": True}},
        {"seq": 3, "user": "u1", "input": "in1", "concepts": {"cat": 1.0}},  # u1 corrects cat
    ]

    def votes_of(event: dict) -> list[Vote]:
        return [Vote((event["input"], c), event["user"], v) for c, v in event["concepts"].items()]

    forward = rebuild_labels(events, votes_of, order=lambda e: e["seq"])
    backward = rebuild_labels(reversed(events), votes_of, order=lambda e: e["seq"])
    assert forward == backward
    assert forward.labels[("in1", "cat")].value is True
    assert forward.labels[("in1", "dog")].n_users == 2


def radio_votes(seed: int, n_images: int = 90, judges: int = 2) -> tuple[list[int], list[Vote], dict[int, set[str]]]:
    """Each image is one of three classes; an end user picks one (that class "yes", the others
    "no"). Four honest users; "liar" always picks the next class (a look-alike answer)."""
    rng = np.random.default_rng(seed)
    people = ["h1", "h2", "h3", "h4", "liar"]
    truth = [i % 3 for i in range(n_images)]
    votes, judged_by = [], {}
    for i, t in enumerate(truth):
        judged_by[i] = {people[int(u)] for u in rng.choice(len(people), judges, replace=False)}
        for user in sorted(judged_by[i]):
            pick = (t + 1) % 3 if user == "liar" else t
            votes += [Vote((i, c), user, c == pick) for c in range(3)]
    return truth, votes, judged_by


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_judges_per_item_still_resolve_the_honest_answer(seed: int) -> None:
    """With two judges an honest and a lying answer tie in a plain vote; the rates break the tie.

    The liar agrees with everyone on the easy "no" items, so one overall accuracy would keep them
    near honest; their sensitivity on present items gives them away.
    """
    truth, votes, judged_by = radio_votes(seed)
    agg = aggregate(votes)
    liar, honest = agg.users["liar"], [agg.users[u] for u in ("h1", "h2", "h3", "h4")]
    assert liar.sensitivity < 0.5 < min(u.sensitivity for u in honest)
    assert liar.weight < min(u.weight for u in honest) / 2
    contested = [i for i, users in judged_by.items() if "liar" in users]
    for i in contested:  # the honest judge's pick wins, confidently enough to train on
        label = agg.labels[(i, truth[i])]
        assert label.value is True and label.confidence >= 0.7
    majority = aggregate(votes, prior=(1e6, 2.5e5))  # everybody pinned at 0.8: a plain vote
    assert all(majority.labels[(i, truth[i])].confidence == pytest.approx(0.5, abs=1e-3) for i in contested)


def test_down_weighted_lists_users_with_less_than_half_a_newcomers_say() -> None:
    truth, votes, _ = radio_votes(0)
    assert down_weighted(aggregate(votes)) == ["liar"]
    assert down_weighted(aggregate(votes, prior=(1e6, 2.5e5)), prior=(1e6, 2.5e5)) == []
