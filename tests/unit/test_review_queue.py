"""The review queue's order: the most even split first, then the most votes; each voter's latest say."""

from __future__ import annotations

from visionloop.learning.review import Disputed, Vote, disagreement, disputed


def test_even_splits_come_first_and_each_voter_counts_once() -> None:
    votes = [  # newest first
        Vote(("a", "cat"), "u1", True), Vote(("a", "cat"), "u2", False),
        Vote(("b", "cat"), "u1", True), Vote(("b", "cat"), "u2", True), Vote(("b", "cat"), "u3", False),
        Vote(("b", "cat"), "u4", True), Vote(("b", "cat"), "u5", False), Vote(("b", "cat"), "u6", False),
        Vote(("c", "dog"), "u1", True), Vote(("c", "dog"), "u2", True),   # agreed: not in doubt
        Vote(("d", "dog"), "u1", True), Vote(("d", "dog"), "u1", False),  # u1 changed their mind: one vote
    ]
    assert disputed(votes, 10) == [Disputed("b", "cat", 3, 3), Disputed("a", "cat", 1, 1)]
    assert disputed(votes, 1) == [Disputed("b", "cat", 3, 3)]
    assert disputed([], 5) == []
    assert disagreement(votes) == (2, 3)  # a and b split; c agreed; d has one voter: not a rate's term
    assert disagreement([]) == (0, 0)


def test_doubt_is_the_minority_share() -> None:
    assert Disputed("x", "y", 3, 1).doubt == 0.25 and Disputed("x", "y", 2, 2).doubt == 0.5
