"""Labels from end-user votes, weighting each end user by how often they agree with the others.

Why: feedback comes from many end users of an application, some careless and a few hostile. A
plain majority lets a determined minority flip labels; this module estimates each user's
reliability with the two-coin Dawid–Skene model (Dawid & Skene 1979; Raykar et al. 2010) fitted
by EM, and resolves every item by a weighted log-odds vote.

The model: item ``i`` is present with probability ``pi`` (the class prior); user ``u`` says "yes"
to a present item with probability ``sens_u`` and "no" to an absent one with probability
``spec_u``. EM alternates between item posteriors and these rates, where

- rates are Beta-prior posterior means over the user's votes on items someone else also judged
  (the "shared" votes): users with few shared votes stay near the prior mean, and a user cannot
  earn trust by agreeing with themselves on items nobody else saw;
- two rates, not one: most statements are easy negatives ("not a dog"), on which a hostile user
  who only lies about what an image *is* agrees with everybody. A single accuracy would average
  those in and keep the liar near honest; sensitivity exposes them;
- the class prior ``pi`` is estimated with the rates. Without it the model cannot tell "some
  users lie" from "present items are often missed", which is what two judges per item look like.

The verdict is symmetric and has no class prior, so a single statement about an item nobody
else judged stands (one user's "it is a labrador" makes a label): a vote counts
``max(0, log(r_u / (1 - r_u)))`` with ``r_u`` the user's balanced accuracy
``(sens_u + spec_u) / 2`` — their accuracy were present and absent equally likely. A user at or
below chance gets weight 0 rather than a negative (inverted) weight: inversion would be right for
a perfectly consistent liar, but it hands control to whoever is detected (a detected adversary
who then tells the truth on chosen items would flip them), and a merely confused user would have
their correct answers turned into errors. Votes without an end-user id form one anonymous pool
with a fixed reliability.

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
import numpy.typing as npt

E = TypeVar("E")

DEFAULT_PRIOR = (8.0, 2.0)  # Beta(a, b) on sensitivity and on specificity: mean 0.8, worth 10 shared votes
ANONYMOUS_RELIABILITY = 0.7
CLASS_PRIOR_RANGE = (0.01, 0.99)  # keeps log(pi) finite when every vote says the same


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
    reliability: float  # balanced accuracy: (sensitivity + specificity) / 2
    sensitivity: float  # estimated probability of "yes" on a present item
    specificity: float  # estimated probability of "no" on an absent item
    weight: float  # log-odds weight given to each of their votes (0 for reliability <= 0.5)
    n_votes: int
    n_shared: int  # votes on items someone else judged too: the evidence behind ``reliability``


@dataclass(frozen=True)
class Aggregation:
    labels: dict[Hashable, Label]  # in order of each item's first vote
    users: dict[str | None, UserReliability]
    iterations: int
    converged: bool
    class_prior: float | None = None  # the estimated share of present items (None: no votes)


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


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _log(x: npt.NDArray[np.float64] | float) -> npt.NDArray[np.float64]:
    logged: npt.NDArray[np.float64] = np.log(np.clip(x, 1e-9, 1.0))  # numpy's stubs say Any
    return logged


def _logit_weight(reliability: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    r = np.clip(reliability, 1e-6, 1 - 1e-6)
    return np.maximum(0.0, np.log(r / (1 - r)))


def aggregate(
    votes: Iterable[Vote],
    *,
    prior: tuple[float, float] = DEFAULT_PRIOR,
    anonymous_reliability: float = ANONYMOUS_RELIABILITY,
    max_iter: int = 200,
    tol: float = 1e-6,
) -> Aggregation:
    """Deduplicate, estimate each end user's rates by EM, and resolve every item.

    ``prior`` is the Beta(a, b) prior on a user's sensitivity and on their specificity; its mean
    is what a new user gets. Deterministic: the result depends only on the votes and their order.
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
    yes = np.array([bool(v.label) for v in kept])
    weight = np.array([v.weight for v in kept])
    anonymous = users.get(None)
    n_items, n_users = len(items), len(users)

    # A vote is evidence about its user only where another vote exists on the same item; an
    # identified user has one vote per item after dedup, so that is "the item has >= 2 votes".
    shared = np.bincount(item_idx, minlength=n_items)[item_idx] >= 2
    estimated = np.ones(n_users, dtype=bool)
    if anonymous is not None:
        estimated[anonymous] = False
    w_shared = weight * shared

    def evidence(sens: np.ndarray, spec: np.ndarray) -> np.ndarray:
        """Per item, the log likelihood ratio present : absent of its votes."""
        said_yes = _log(sens) - _log(1 - spec)
        said_no = _log(1 - sens) - _log(spec)
        per_vote = np.where(yes, said_yes[user_idx], said_no[user_idx])
        return np.bincount(item_idx, weights=weight * per_vote, minlength=n_items)

    def rate(hits: np.ndarray, trials: np.ndarray, current: np.ndarray) -> np.ndarray:
        counted = np.bincount(user_idx, weights=hits, minlength=n_users)
        total = np.bincount(user_idx, weights=trials, minlength=n_users)
        return np.where(estimated, (alpha + counted) / (alpha + beta + total), current)

    sens = np.full(n_users, alpha / (alpha + beta))
    if anonymous is not None:
        sens[anonymous] = anonymous_reliability
    spec = sens.copy()
    pi = 0.5
    converged, iterations = False, 0
    for iterations in range(1, max_iter + 1):  # noqa: B007  (read after the loop)
        present = _sigmoid(evidence(sens, spec) + np.log(pi / (1 - pi)))
        pi = float(np.clip(present.mean(), *CLASS_PRIOR_RANGE))
        p = present[item_idx]
        new_sens = rate(w_shared * p * yes, w_shared * p, sens)
        new_spec = rate(w_shared * (1 - p) * ~yes, w_shared * (1 - p), spec)
        change = float(max(np.max(np.abs(new_sens - sens)), np.max(np.abs(new_spec - spec))))
        sens, spec = new_sens, new_spec
        if change < tol:
            converged = True
            break

    reliability = (sens + spec) / 2
    user_weight = _logit_weight(reliability)
    sign = np.where(yes, 1.0, -1.0)
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
        user: UserReliability(user, float(reliability[u]), float(sens[u]), float(spec[u]), float(user_weight[u]),
                              int(n_user_votes[u]), int(n_shared[u]))
        for user, u in users.items()
    }
    return Aggregation(labels=labels, users=reliabilities, iterations=iterations, converged=converged,
                       class_prior=pi)


def down_weighted(aggregation: Aggregation, prior: tuple[float, float] = DEFAULT_PRIOR) -> list[str | None]:
    """End users whose votes count less than half a newcomer's: their shared votes found them unreliable."""
    newcomer = float(_logit_weight(np.array(prior[0] / sum(prior))))
    return [u.end_user for u in aggregation.users.values() if u.weight < newcomer / 2]


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
