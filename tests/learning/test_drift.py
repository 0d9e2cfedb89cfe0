"""The input-drift test: exact false-alarm rate on exchangeable windows, and a style change caught."""

from __future__ import annotations

import numpy as np
import pytest

from visionloop.learning.drift import mmd_test


def embeddings(rng: np.random.Generator, n: int, clusters: int = 6) -> np.ndarray:
    """Unit vectors in 1280-d around six clusters (as image embeddings are), drawn from the first
    ``clusters`` of them (fewer: the mix of images changed)."""
    centres = np.random.default_rng(42).normal(size=(6, 1280))
    x = centres[rng.integers(0, clusters, size=n)] + rng.normal(scale=1.5, size=(n, 1280))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_iid_windows_fire_at_the_nominal_rate() -> None:
    """Many i.i.d. windows (fewer permutations than the service uses, for speed: the rate is exact
    for any number): the false-alarm rate stays within the binomial bound of alpha."""
    rng = np.random.default_rng(0)
    fired = [mmd_test(embeddings(rng, 100), embeddings(rng, 50), permutations=99, alpha=0.01, seed=i).outside
             for i in range(200)]
    assert sum(fired) <= 6  # P(more than 6 of 200 at 0.01) < 0.005


def test_a_shifted_window_fires_and_its_figure_passes_the_threshold() -> None:
    rng = np.random.default_rng(1)
    check = mmd_test(embeddings(rng, 200), embeddings(rng, 100, clusters=3))
    assert check.outside and check.figure > check.threshold and check.p_value == pytest.approx(0.001)
    quiet = mmd_test(embeddings(rng, 200), embeddings(rng, 100))
    assert not quiet.outside and quiet.figure <= quiet.threshold and quiet.evidence == 100


def test_refuses_shapes_and_an_alpha_the_permutations_cannot_reach() -> None:
    rng = np.random.default_rng(2)
    with pytest.raises(ValueError, match="2-d"):
        mmd_test(embeddings(rng, 10), embeddings(rng, 10)[:, :5])
    with pytest.raises(ValueError, match="alpha"):
        mmd_test(embeddings(rng, 10), embeddings(rng, 10), permutations=99, alpha=0.001)
