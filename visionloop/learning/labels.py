"""Labels from end-user votes, weighting each end user by how often they agree with the others.

Why: feedback comes from many end users of an application, some careless and a few hostile. A
plain majority lets a determined minority flip labels; this module estimates each user's
reliability with a one-coin Dawid–Skene model (Dawid & Skene 1979; the "one-coin" symmetric
variant) fitted by EM, and resolves every item by a weighted log-odds vote.

The model: item ``i`` has an unknown binary truth; user ``u`` reports it correctly with probability
``a_u``. A vote of weight ``w`` adds ``w * log(a_u / (1 - a_u))`` to the item's log-odds for the
label it gives. EM alternates between item posteriors and reliabilities, where

- a user's reliability is the Beta-prior posterior mean of their agreement with the *others'*
  verdict (the item's log-odds without the user's own vote), counted only on items someone else
  also judged. So users with few shared votes stay near the prior mean, and a user cannot earn
  trust by agreeing with themselves on items nobody else saw;
- the vote weight is ``max(0, log-odds)``: a user whose reliability falls below 0.5 gets weight 0
  rather than a negative (inverted) weight. Inversion would be right for a perfectly consistent
  liar, but it hands control to whoever is detected: a detected adversary who then tells the
  truth on chosen items would flip them, and a merely confused user (e.g. one who misreads the
  concept on some images) would have their correct answers turned into errors. Zero weight
  removes influence without trusting a model of the adversary;
- votes without an end-user id form one anonymous pool with a fixed reliability;
- no class prior enters the verdict: a single correction must win on an item nobody else judged.

Identical retries (same user, item and label) count once; when a user votes on an item more than
once, their strongest vote counts (an explicit annotation outranks a weak click-derived vote) and,
among equally strong ones, the latest in log order (a correction supersedes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

E = TypeVar("E")

DEFAULT_PRIOR = (8.0, 2.0)  # Beta(a, b): mean 0.8, worth 10 shared votes
ANONYMOUS_RELIABILITY = 0.7


@dataclass(frozen=True)
class Vote:
    """One end user's answer about one item, e.g. ``item=(input_id, concept_id)``."""

    item: Hashable
    end_user: str | None
    label: bool | int
    weight: float = 1.0


@dataclass(frozen=True)
class Label:
    """The resolved value of an item; ``confidence`` is the posterior probability of ``value``."""

    item: Hashable
    value: bool
    confidence: float
    n_votes: int
    n_users: int  # distinct end users; the anonymous pool counts as one


@dataclass(frozen=True)
class UserReliability:
    end_user: str | None
    reliability: float  # estimated probability that this user's answer is right
    weight: float  # log-odds weight given to each of their votes (0 for reliability <= 0.5)
    n_votes: int
    n_shared: int  # votes on items someone else judged too: the evidence behind ``reliability``


@dataclass(frozen=True)
class Aggregation:
    labels: dict[Hashable, Label]  # in order of each item's first vote
    users: dict[str | None, UserReliability]
    iterations: int
    converged: bool


def _label_value(vote: Vote) -> bool:
    value = vote.label
    if isinstance(value, bool):
        return value
    if value in (0, 1):  # also 0.0 / 1.0 from the Python client
        return bool(value)
    raise ValueError(f"a vote label must be true/false or 1/0, got {value!r} for {vote.item!r}")


def dedup_votes(votes: Iterable[Vote]) -> list[Vote]:
    """One vote per (end user, item): the strongest, the latest among equally strong ones.

    Anonymous votes cannot be told apart from retries, so they collapse to one per (item, label)
    (keeping the strongest): under-counting agreement is the safe error. The kept votes come back in
    input order, with ``label`` normalised to ``bool``.
    """
    chosen: dict[tuple[Any, ...], tuple[int, Vote]] = {}
    for position, vote in enumerate(votes):
        if not (math.isfinite(vote.weight) and vote.weight > 0):
            raise ValueError(f"a vote weight must be a positive number, got {vote.weight!r}")
        vote = Vote(vote.item, vote.end_user, _label_value(vote), float(vote.weight))
        key = (vote.item, vote.label) if vote.end_user is None else (vote.item, None, vote.end_user)
        previous = chosen.get(key)
        if previous is None or vote.weight >= previous[1].weight:
            chosen[key] = (position, vote)
    return [vote for _, vote in sorted(chosen.values(), key=lambda pv: pv[0])]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _logit_weight(reliability: np.ndarray) -> np.ndarray:
    r = np.clip(reliability, 1e-6, 1 - 1e-6)
    return np.maximum(0.0, np.log(r / (1 - r)))


def aggregate(
    votes: Iterable[Vote],
    *,
    prior: tuple[float, float] = DEFAULT_PRIOR,
    anonymous_reliability: float = ANONYMOUS_RELIABILITY,
    max_iter: int = 100,
    tol: float = 1e-6,
) -> Aggregation:
    """Deduplicate, estimate each end user's reliability by EM, and resolve every item.

    ``prior`` is the Beta(a, b) prior on a user's reliability; its mean is what a new user gets.
    Deterministic: the result depends only on the votes and their order.
    """
    alpha, beta = prior
    if alpha <= 0 or beta <= 0:
        raise ValueError(f"prior must be two positive numbers, got {prior}")
    if not 0.5 <= anonymous_reliability < 1:
        raise ValueError(f"anonymous_reliability must be in [0.5, 1), got {anonymous_reliability}")
    kept = dedup_votes(votes)
    if not kept:
        return Aggregation(labels={}, users={}, iterations=0, converged=True)

    items: dict[Hashable, int] = {}
    users: dict[str | None, int] = {}
    for v in kept:
        items.setdefault(v.item, len(items))
        users.setdefault(v.end_user, len(users))
    item_idx = np.array([items[v.item] for v in kept])
    user_idx = np.array([users[v.end_user] for v in kept])
    sign = np.array([1.0 if v.label else -1.0 for v in kept])
    weight = np.array([v.weight for v in kept])
    anonymous = users.get(None)
    n_items, n_users = len(items), len(users)

    # A vote is evidence about its user only where another vote exists on the same item; an
    # identified user has one vote per item after dedup, so that is "the item has >= 2 votes".
    shared = np.bincount(item_idx, minlength=n_items)[item_idx] >= 2
    estimated = np.ones(n_users, dtype=bool)
    if anonymous is not None:
        estimated[anonymous] = False
    evidence = np.bincount(user_idx, weights=weight * shared, minlength=n_users)

    reliability = np.full(n_users, alpha / (alpha + beta))
    if anonymous is not None:
        reliability[anonymous] = anonymous_reliability
    converged, iterations = False, 0
    for iterations in range(1, max_iter + 1):
        contribution = weight * sign * _logit_weight(reliability)[user_idx]
        logodds = np.bincount(item_idx, weights=contribution, minlength=n_items)
        agree = _sigmoid(sign * (logodds[item_idx] - contribution))  # others' verdict
        agreement = np.bincount(user_idx, weights=weight * agree * shared, minlength=n_users)
        updated = np.where(estimated, (alpha + agreement) / (alpha + beta + evidence), reliability)
        change = float(np.max(np.abs(updated - reliability)))
        reliability = updated
        if change < tol:
            converged = True
            break

    user_weight = _logit_weight(reliability)
    logodds = np.bincount(item_idx, weights=weight * sign * user_weight[user_idx], minlength=n_items)
    n_votes = np.bincount(item_idx, minlength=n_items)
    voters: list[set[int]] = [set() for _ in range(n_items)]
    last_label = [False] * n_items
    for v, i, u in zip(kept, item_idx, user_idx, strict=True):
        voters[i].add(int(u))
        last_label[i] = bool(v.label)
    labels = {}
    for item, i in items.items():
        value = bool(logodds[i] > 0) if logodds[i] != 0 else last_label[i]
        confidence = float(_sigmoid(np.array(abs(logodds[i]))))
        labels[item] = Label(item, value, confidence, int(n_votes[i]), len(voters[i]))

    n_user_votes = np.bincount(user_idx, minlength=n_users)
    n_shared = np.bincount(user_idx, weights=shared, minlength=n_users)
    reliabilities = {
        user: UserReliability(user, float(reliability[u]), float(user_weight[u]),
                              int(n_user_votes[u]), int(n_shared[u]))
        for user, u in users.items()
    }
    return Aggregation(labels=labels, users=reliabilities, iterations=iterations, converged=converged)


def rebuild_labels(
    log: Iterable[E],
    votes_of: Callable[[E], Iterable[Vote]],
    *,
    order: Callable[[E], Any] | None = None,
    prior: tuple[float, float] = DEFAULT_PRIOR,
    anonymous_reliability: float = ANONYMOUS_RELIABILITY,
) -> Aggregation:
    """Labels from the whole feedback log, the same whatever order the log is read in.

    ``votes_of`` turns one logged event into its votes (a concept feedback event gives one vote
    per concept); ``order`` (e.g. the event's sequence number) sorts the events first, since
    "latest vote wins" needs a defined order when the store returns rows unordered.
    """
    events = sorted(log, key=order) if order is not None else list(log)
    return aggregate((v for e in events for v in votes_of(e)), prior=prior,
                     anonymous_reliability=anonymous_reliability)
