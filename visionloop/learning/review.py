"""Which judgements people should look at first: where end users disagree most.

A review queue (active learning, as Label Studio's and Argilla's) shows an operator the items
whose labels are most in doubt, so that one trusted answer settles the most. Here an item is an
(input, concept) pair, a vote is one end user's latest say on it, and doubt is the share of the
minority: 0 when everyone agrees, 0.5 when they split evenly. Ties go to the item with more votes
(more people are affected by getting it wrong).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Vote:
    item: tuple[str, str]   # (input id, concept id)
    voter: Hashable         # an end user; each anonymous event its own voter
    present: bool


@dataclass(frozen=True)
class Disputed:
    input_id: str
    concept_id: str
    present: int
    absent: int

    @property
    def doubt(self) -> float:
        return min(self.present, self.absent) / (self.present + self.absent)


def tally(votes: Iterable[Vote]) -> dict[tuple[str, str], tuple[int, int]]:
    """Per item, how many voters say present and how many absent; ``votes`` come newest first, and
    a voter's newest vote on an item is the one that counts."""
    latest: dict[tuple[tuple[str, str], Hashable], bool] = {}
    for v in votes:
        latest.setdefault((v.item, v.voter), v.present)
    counts: dict[tuple[str, str], list[int]] = {}
    for (item, _), present in latest.items():
        counts.setdefault(item, [0, 0])[0 if present else 1] += 1
    return {item: (yes, no) for item, (yes, no) in counts.items()}


def disputed(votes: Iterable[Vote], limit: int) -> list[Disputed]:
    """The ``limit`` items most in doubt among those someone said present and someone absent
    (votes as :func:`tally` counts them)."""
    split = [Disputed(i, c, yes, no) for (i, c), (yes, no) in tally(votes).items() if yes and no]
    return sorted(split, key=lambda d: (-d.doubt, -(d.present + d.absent), d.input_id, d.concept_id))[:limit]


def disagreement(votes: Iterable[Vote]) -> tuple[int, int]:
    """(items voters disagree on, items at least two voters judged): the disagreement rate's terms."""
    counts = tally(votes).values()
    return sum(1 for yes, no in counts if yes and no), sum(1 for yes, no in counts if yes + no >= 2)
