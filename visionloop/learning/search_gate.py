"""The adoption gate for trained search rankings: later sessions, seen and unseen queries apart.

Why: a ranking learned from clicks is asked two things — does it serve the queries it learned from
better when they are asked again, and does it generalise to queries nobody asked before? Folds by
query can only see the second, and by construction hide the first. So the log is split in time:
a candidate learns from the earlier sessions and is judged on the later ones (IPS-corrected, see
:func:`visionloop.services.training.click_learning.holdout_figures`), those of queries its
training saw (*seen*) and the others (*unseen*) reported apart. It is adopted when neither group's
figure falls by more than ``tolerance`` (relative) and at least one rises; a group with too few
sessions is reported and decides nothing. The decision names the figure that moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

from visionloop.learning.estimates import Estimate
from visionloop.learning.promotion import Decision

TOLERANCE = 0.01
GROUPS = ("seen", "unseen")
S = TypeVar("S")


def time_split(sessions: Sequence[S], keys: Sequence[str], fraction: float = 0.2
               ) -> tuple[list[S], list[S], list[S]]:
    """(train, seen, unseen): the latest ``fraction`` of the sessions (oldest first) evaluate; an
    evaluated session is *seen* when its query ``key`` is among the training sessions'."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if len(keys) != len(sessions):
        raise ValueError(f"{len(sessions)} sessions but {len(keys)} keys")
    cut = len(sessions) - round(len(sessions) * fraction)
    learned = set(keys[:cut])
    later = list(zip(sessions[cut:], keys[cut:], strict=True))
    return (list(sessions[:cut]), [s for s, k in later if k in learned], [s for s, k in later if k not in learned])


def _change(champion: Estimate, challenger: Estimate) -> float | None:
    if champion.value is None or challenger.value is None or challenger.too_few or champion.too_few:
        return None
    if champion.value == 0:
        return 0.0 if challenger.value == 0 else float("inf") if challenger.value > 0 else float("-inf")
    return (challenger.value - champion.value) / abs(champion.value)


def gate(champion: Mapping[str, Estimate], challenger: Mapping[str, Estimate], *, metric: str,
         tolerance: float = TOLERANCE) -> Decision:
    """Adopt ``challenger`` over ``champion`` (each: group -> the ``metric`` figure)? See the module."""
    notes, changes = [], {}
    for group in GROUPS:
        old, new = champion.get(group), challenger.get(group)
        change = _change(old, new) if old is not None and new is not None else None
        if change is None:
            n = new.n if new is not None else 0
            notes.append(f"{group} queries: too few later sessions to judge ({n})")
            continue
        changes[group] = change
        assert old is not None and new is not None and old.value is not None and new.value is not None
        notes.append(f"{group} queries' {metric} {old.value:.3f} -> {new.value:.3f} "
                     f"({change:+.1%} on {new.n} sessions)")
    worse = [g for g, c in changes.items() if c < -tolerance]
    better = [g for g, c in changes.items() if c > 0]
    detail = "; ".join(notes)
    if worse:
        return Decision(False, f"refused: {' and '.join(worse)} queries' {metric} fell by more than "
                               f"{tolerance:.0%}: {detail}", [])
    if not better:
        return Decision(False, f"refused: no gain on seen or unseen queries: {detail}", [])
    return Decision(True, f"adopted: {' and '.join(better)} queries' {metric} rose, neither fell by more than "
                          f"{tolerance:.0%}: {detail}", [])
