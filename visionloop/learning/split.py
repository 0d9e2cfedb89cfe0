"""A held-out set that stays put as the feedback log grows.

Why: champion and challenger must be compared on feedback neither was trained on, and an input
must not drift from the held-out side to the training side between two training runs (the next
version would then be evaluated on data its predecessor never saw but it trained on). Hashing the
input's key decides its side once and for all, with no stored state and no random seed.
"""

from __future__ import annotations

import hashlib

HOLDOUT_FRACTION = 0.2


def holdout_score(key: str, salt: str = "") -> float:
    """A uniform number in [0, 1) fixed by ``salt`` and ``key`` (sha256, stable across runs)."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_held_out(key: str, fraction: float = HOLDOUT_FRACTION, salt: str = "") -> bool:
    """True for about ``fraction`` of keys; raising the fraction only moves keys into held-out."""
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    return holdout_score(key, salt) < fraction
