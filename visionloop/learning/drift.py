"""Input drift: are the recent images drawn from the same distribution as a reference set?

A kernel two-sample test (maximum mean discrepancy, Gretton et al. 2012) on 1280-d embeddings:

1. pool the reference and recent embeddings and project them on the pool's top principal
   components (in 1280 dimensions with a few hundred points, a Gaussian kernel sees every pair as
   equally far; the projection keeps the directions the images actually vary along);
2. Gaussian kernel with the median pairwise distance of the pool as bandwidth;
3. the biased MMD² of the two sides, against the same statistic under random relabellings of the
   pool (a permutation test).

Every step treats the pooled points alike (the projection and bandwidth are fitted on the pool, not
on the reference), so under no drift the two sides are exchangeable and the permutation p-value is
exact: with ``permutations = 999`` and ``alpha = 0.001`` a window of i.i.d. traffic fires with
probability 0.001, whatever the embeddings.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from visionloop.learning.alarm_checks import Check


def mmd_test(reference: np.ndarray, recent: np.ndarray, *, components: int = 20, permutations: int = 999,
             alpha: float = 0.001, seed: int = 0) -> Check:
    """``figure`` is the MMD² of ``recent`` against ``reference``; ``threshold`` the largest MMD² the
    permutations reached below the ``alpha`` tail (fires when the figure passes it).

    On one BLAS thread: the matrices are a few hundred wide, so more threads only contend, and a
    background check must not take the cores that serve requests."""
    with threadpool_limits(1):
        return _mmd_test(reference, recent, components, permutations, alpha, seed)


def _mmd_test(reference: np.ndarray, recent: np.ndarray, components: int, permutations: int, alpha: float,
              seed: int) -> Check:
    x, y = np.asarray(reference, dtype=np.float64), np.asarray(recent, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or len(x) < 2 or len(y) < 2:
        raise ValueError(f"reference and recent must be 2-d with one width and 2+ rows, got {x.shape} and {y.shape}")
    if not 0 < alpha < 1 or alpha * (permutations + 1) < 1:
        raise ValueError(f"alpha must be within (0, 1) and at least 1/(permutations + 1), got {alpha} "
                         f"with {permutations} permutations")
    pool = np.concatenate([x, y])
    pool -= pool.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(pool @ pool.T)  # the pool's Gram matrix: a few hundred wide, not 1280
    top = slice(max(len(pool) - components, 0), None)
    projected = eigenvectors[:, top] * np.sqrt(np.maximum(eigenvalues[top], 0.0))  # scores on the top components
    sq = np.sum(projected**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * projected @ projected.T, 0.0)
    median = float(np.median(d2[np.triu_indices(len(pool), k=1)]))
    kernel = np.exp(-d2 / max(median, 1e-12))
    n, m = len(x), len(y)
    labels = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.tile(labels, (permutations, 1)), axis=1)
    null = np.sum((shuffled @ kernel) * shuffled, axis=1)
    figure = float(labels @ kernel @ labels)
    p_value = (1 + int(np.sum(null >= figure))) / (permutations + 1)
    allowed = int(np.floor(alpha * (permutations + 1))) - 1  # permutations at or above the figure a firing allows
    threshold = float(np.sort(null)[::-1][allowed]) if 0 <= allowed < permutations else float(null.max())
    return Check(figure=figure, threshold=threshold, outside=p_value <= alpha, evidence=m, p_value=p_value)
