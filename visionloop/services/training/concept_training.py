"""Train a concept-heads version from resolved labels, compare it with the champion, promote or not.

Every labelled image trains the version, and every one is also scored out of fold by heads fitted
without it (:mod:`visionloop.learning.crossval`): those scores choose how much say the base model
keeps per concept and decide promotion. Concepts both versions score are compared on images the
champion has not learned from (all of them when the champion is the base model, which learned from
none); a concept the champion lacks goes live on its own cross-validated evidence
(:func:`visionloop.learning.promotion.decide_new_concepts`).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from visionloop.inference.runtime import ModelRuntime
from visionloop.learning.crossval import base_shares, cross_val_proba, fold_of
from visionloop.learning.estimates import Estimate
from visionloop.learning.heads import ConceptHeads, combine, label_matrix
from visionloop.learning.labels import Label
from visionloop.learning.metrics_concepts import MIN_COUNT, ConceptRecord, evaluate_concepts
from visionloop.learning.promotion import Decision, NewConcept, decide, decide_new_concepts
from visionloop.services.training.data import ConceptData, display, stack, unit_rows
from visionloop.services.training.scoring import base_scores, head_scores

PRIMARY = "macro_auc"
Progress = Callable[[str], None]


@dataclasses.dataclass
class TrainedHeads:
    heads: ConceptHeads
    decision: Decision
    holdout: dict[str, Any]  # the challenger's (cross-validated) and champion's figures, JSON-ready
    n_train: int
    n_compared: int  # images the shared concepts were compared on


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


def skipped_reasons(skipped: Mapping[str, str], names: Mapping[str, str], limit: int = 5) -> str:
    return "; ".join(f"{display(c, names)}: {why}" for c, why in list(skipped.items())[:limit])


def train_heads(data: ConceptData, feats: dict[str, np.ndarray], runtime: ModelRuntime, model_runtime: str,
                champion: ConceptHeads | None, *, champion_last_seq: int, salt: str, blend_k: float,
                progress: Progress) -> TrainedHeads:
    """Fit the heads on every labelled image and decide promotion from out-of-fold scores.

    ``champion_last_seq`` is the newest feedback event the champion's heads learned from: images
    first labelled after it are the ones it has not seen.
    """
    labels = [lab for lab in data.labels if lab.item[0] in feats]
    rows = sorted({lab.item[0] for lab in labels})
    progress(f"{len(labels)} labels on {len(rows)} images, all used to train; promotion by cross-validation")
    Y, W, concepts = label_matrix(labels, rows)
    if not rows or not concepts:
        raise InsufficientData("no labelled images to train on", last_seq=data.last_seq)
    raw = stack(feats, rows)
    X = unit_rows(raw)
    heads = ConceptHeads()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        heads.fit(X, Y, sample_weight=W, concepts=concepts)
        if not heads.concepts_:
            raise InsufficientData("no concept has enough labelled images (at least 5 positive and 5 negative): "
                                   + skipped_reasons(heads.skipped_, data.names), last_seq=data.last_seq)
        progress(f"trained {len(heads.concepts_)} concept heads, skipped {len(heads.skipped_)}; cross-validating")
        oof = cross_val_proba(heads, X, Y, W, concepts, fold_of(rows, salt=salt))
    base = base_scores(runtime, model_runtime, raw, concepts)
    base_matrix = np.array([[row.get(c, np.nan) for c in concepts] for row in base]).reshape(len(rows), -1)
    shares = dict(zip(concepts, base_shares(oof, base_matrix, Y, W), strict=True))
    heads.with_shares(shares)
    column = {c: j for j, c in enumerate(concepts)}
    served = heads.shares(blend_k)
    challenger_scores = [combine(b, {c: oof[i, column[c]] for c in heads.concepts_ if not np.isnan(oof[i, column[c]])},
                                 served) for i, b in enumerate(base)]

    # Shared concepts (the champion scores them too) on images the champion has not learned from.
    known = {c for row in base for c in row} | set(champion.concepts_ if champion is not None else ())
    seen = champion_last_seq if champion is not None else None
    compared = [d for d in rows if seen is None or data.first_seq.get(d, 0) > seen]
    compared_set = set(compared)
    shared_labels = [lab for lab in labels if lab.item[1] in known and lab.item[0] in compared_set]
    at = {d: i for i, d in enumerate(rows)}
    shared: Decision | None = None
    challenger: dict[str, Estimate] = {}
    incumbent: dict[str, Estimate] = {}
    if shared_labels:
        idx = [at[d] for d in compared]
        champ = head_scores(champion, raw[idx], [base[i] for i in idx], blend_k)
        challenger = holdout_figures(records_for(shared_labels, compared, [challenger_scores[i] for i in idx]))
        incumbent = holdout_figures(records_for(shared_labels, compared, champ))
        shared = decide(incumbent, challenger, primary=PRIMARY)
        if shared.comparisons[0].delta is None and not shared.promote:
            shared = _with_need(shared, shared_labels, fresh=seen is not None)
    new_ids = [c for c in heads.concepts_ if c not in known]
    new_labels = [lab for lab in labels if lab.item[1] in set(new_ids)]
    per_new = evaluate_concepts(records_for(new_labels, rows, challenger_scores), n_resamples=100).concepts
    new = [NewConcept(display(c, data.names), per_new[c].roc_auc, per_new[c].n_pos, per_new[c].n_neg)
           for c in new_ids if c in per_new]
    decision = decide_new_concepts(shared, new)
    if shared is None and not new and seen is not None:
        decision = Decision(False, "refused: every labelled image taught the current version too, so nothing "
                                   "tells whether this one is better; feedback on new images would", [])
    progress(decision.reason)
    holdout = {"method": "cross-validation", "challenger": {k: estimate_json(v) for k, v in challenger.items()},
               "champion": {k: estimate_json(v) for k, v in incumbent.items()}, "n_labels": len(shared_labels),
               "new_concepts": {c.name: {"roc_auc": estimate_json(c.roc_auc), "n_pos": c.n_pos, "n_neg": c.n_neg}
                                for c in new}}
    return TrainedHeads(heads, decision, holdout, len(rows), len(compared))


def _with_need(shared: Decision, labels: list[Label], *, fresh: bool) -> Decision:
    """A refusal for too few labels, saying how many more would let the comparison count."""
    n_pos = sum(lab.value for lab in labels)
    n_neg = len(labels) - n_pos
    missing = [f"{MIN_COUNT - n} more {kind}" for n, kind in ((n_pos, "positive"), (n_neg, "negative"))
               if n < MIN_COUNT]
    where = " on images the current version has not learned from" if fresh else ""
    need = f"; {' and '.join(missing) or 'more'} labels of the concepts it shares with the current version{where} " \
           f"would let the comparison count"
    return dataclasses.replace(shared, reason=shared.reason + need)
