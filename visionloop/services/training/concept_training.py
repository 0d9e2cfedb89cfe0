"""Train a concept-heads version from resolved labels, compare it with the champion, promote or not.

The held-out side is fixed per image by a hash (:mod:`visionloop.learning.split`): champion and
challenger are scored on labels neither trained on, from stored features, by the same rule.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from visionloop.learning.estimates import Estimate
from visionloop.learning.heads import ConceptHeads, label_matrix
from visionloop.learning.labels import Label
from visionloop.learning.metrics_concepts import ConceptRecord, evaluate_concepts
from visionloop.learning.promotion import Decision, decide
from visionloop.learning.split import is_held_out
from visionloop.models.runtime import ModelRuntime
from visionloop.services.training.data import ConceptData, stack, unit_rows
from visionloop.services.training.scoring import base_scores, head_scores

PRIMARY = "macro_auc"
Progress = Callable[[str], None]


@dataclasses.dataclass
class TrainedHeads:
    heads: ConceptHeads
    decision: Decision
    holdout: dict[str, Any]  # the challenger's and champion's held-out figures, JSON-ready
    n_train: int
    n_holdout: int


class InsufficientData(Exception):
    """Nothing could be trained: too few labelled images per concept (judged regions, clicked searches).

    ``last_seq`` is the newest feedback event read, when known: the worker then waits for newer
    feedback before trying again."""

    def __init__(self, message: str, last_seq: int | None = None) -> None:
        super().__init__(message)
        self.last_seq = last_seq


def estimate_json(e: Estimate) -> dict[str, Any]:
    return {"value": e.value, "low": e.low, "high": e.high, "n": e.n, "too_few": e.too_few}


def holdout_figures(records: list[ConceptRecord]) -> dict[str, Estimate]:
    report = evaluate_concepts(records, n_resamples=100)
    return {PRIMARY: report.macro_auc, "top_accuracy": report.top_concept.accuracy}


def records_for(labels: list[Label], rows: list[str], scores: list[dict[str, float]]) -> list[ConceptRecord]:
    index = {d: i for i, d in enumerate(rows)}
    return [ConceptRecord(lab.item[0], lab.item[1], scores[index[lab.item[0]]].get(lab.item[1], 0.0), lab.value)
            for lab in labels if lab.item[0] in index]


def train_heads(data: ConceptData, feats: dict[str, np.ndarray], runtime: ModelRuntime, model_runtime: str,
                champion: ConceptHeads | None, *, salt: str, blend_k: float, progress: Progress) -> TrainedHeads:
    labels = [lab for lab in data.labels if lab.item[0] in feats]
    digests = sorted({lab.item[0] for lab in labels})
    train_rows = [d for d in digests if not is_held_out(d, salt=salt)]
    held_rows = [d for d in digests if is_held_out(d, salt=salt)]
    progress(f"{len(labels)} labels on {len(digests)} images: {len(train_rows)} to train, {len(held_rows)} held out")
    Y, W, concepts = label_matrix([lab for lab in labels if lab.item[0] in set(train_rows)], train_rows)
    if not train_rows or not concepts:
        raise InsufficientData("no labelled images to train on", last_seq=data.last_seq)
    heads = ConceptHeads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        heads.fit(unit_rows(stack(feats, train_rows)), Y, sample_weight=W, concepts=concepts)
    if not heads.concepts_:
        reasons = "; ".join(f"{c}: {why}" for c, why in list(heads.skipped_.items())[:5])
        raise InsufficientData(f"no concept has enough labelled images (at least 5 positive and 5 negative): {reasons}",
                               last_seq=data.last_seq)
    progress(f"trained {len(heads.concepts_)} concept heads, skipped {len(heads.skipped_)}")
    held_labels = [lab for lab in labels if lab.item[0] in set(held_rows)]
    held_feats = stack(feats, held_rows) if held_rows else np.zeros((0, 1), np.float32)
    wanted = sorted({lab.item[1] for lab in held_labels})
    base = base_scores(runtime, model_runtime, held_feats, wanted)
    challenger = holdout_figures(records_for(held_labels, held_rows, head_scores(heads, held_feats, base, blend_k)))
    incumbent = holdout_figures(records_for(held_labels, held_rows, head_scores(champion, held_feats, base, blend_k)))
    decision = decide(incumbent, challenger, primary=PRIMARY)
    progress(decision.reason)
    holdout = {"challenger": {k: estimate_json(v) for k, v in challenger.items()},
               "champion": {k: estimate_json(v) for k, v in incumbent.items()}, "n_labels": len(held_labels)}
    return TrainedHeads(heads, decision, holdout, len(train_rows), len(held_rows))
