"""The simplest learner a user could fit on the same labels, beside visionloop (``bench/learning.py``).

At every checkpoint of the accuracy curve: a scikit-learn ``LogisticRegression`` with its defaults
(``max_iter`` raised so that it converges), fitted on the same noisy answers the end users gave
(the class each picked) and on the embeddings the server returns for the same images, as is and
standardised (``StandardScaler`` first). The ratio compares visionloop's trained version with the
better of the two; over several seeds (``--seeds``) the figures are means.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

LEARNERS = ("plain", "plain_standardised")


def plain_accuracies(X: np.ndarray, answers: np.ndarray, X_test: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    """Held-out top-1 of each plain learner fitted on ``X`` with the users' ``answers``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    out = {}
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, model in (("plain", LogisticRegression(max_iter=3000)),
                            ("plain_standardised", make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)))):
            out[name] = float((model.fit(X, answers).predict(X_test) == y_test).mean())
    return out


def compare(row: dict[str, Any]) -> None:
    """Adds ``plain_best`` and ``ratio`` (visionloop / the better plain learner) to a curve row."""
    best = max(row[k] for k in LEARNERS)
    row["plain_best"] = best
    row["ratio"] = row["accuracy"] / best if row.get("accuracy") is not None and best else None


def means(curves: Sequence[Sequence[dict[str, Any]]], start: Sequence[float],
          oracle: Sequence[float]) -> list[dict[str, Any]]:
    """Per checkpoint, the mean over seeds of visionloop, the plain learners, their ratio and the gap closed."""
    rows = []
    for at in zip(*curves, strict=True):
        if at[0]["events"] == 0 or any(r.get("accuracy") is None for r in at):
            continue
        row: dict[str, Any] = {"events": at[0]["events"], "seeds": len(at)}
        for key in ("accuracy", *LEARNERS, "plain_best", "seconds_since_last_feedback"):
            values = [r[key] for r in at if r.get(key) is not None]
            row[key] = float(np.mean(values)) if values else None
        row["ratio"] = row["accuracy"] / row["plain_best"]
        row["points_vs_plain"] = 100 * (row["accuracy"] - row["plain_best"])
        row["gap_closed"] = float(np.mean([(r["accuracy"] - s) / (o - s) for r, s, o in zip(at, start, oracle)]))
        rows.append(row)
    return rows


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value, target) rows for ``bench/learning.py``'s summary."""
    out = []
    for r in results.get("accuracy_means", []):
        out.append((f"accuracy after {r['events']} events, mean of {r['seeds']} seeds: visionloop vs plain LR",
                    f"{r['accuracy']:.3f} vs {r['plain']:.3f} / standardised {r['plain_standardised']:.3f} "
                    f"(ratio {r['ratio']:.3f}, {r['points_vs_plain']:+.1f} points; gap closed {r['gap_closed']:.2f})",
                    ">= plain - 0.5 points" + ("; >= 0.95 of gap" if r["events"] == 1000 else "")))
    return out
