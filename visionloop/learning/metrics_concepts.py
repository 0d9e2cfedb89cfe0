"""How well a model version's concept scores match what end users said.

Input: one :class:`ConceptRecord` per (output, concept) that has a resolved label, carrying the
score that version gave. Per concept: precision, recall and F1 at a threshold and ROC AUC
(``sklearn.metrics``; a figure is None where it is undefined: precision with nothing predicted
positive, recall with no positive label, AUC with one class missing); the headline is
the macro-averaged ROC AUC over concepts where it is defined, as Clarifai reports it. For outputs
with exactly one positive concept, a confusion matrix of predicted-vs-true top concept.

Every figure is an :class:`Estimate` with a seeded bootstrap interval that resamples whole
outputs, the number of labels behind it and a ``too_few`` flag (fewer than ``min_count`` positives
or negatives). The bootstrap is vectorised (one pass for all resamples) because calling sklearn
200 times per concept does not scale to hundreds of concepts; the tests check that it agrees with
sklearn on the point estimates.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support, roc_auc_score

from visionloop.learning.estimates import CONFIDENCE, N_RESAMPLES, Estimate, defined, interval, ratio, resample_counts

MIN_COUNT = 10


@dataclass(frozen=True)
class ConceptRecord:
    output_id: Hashable
    concept: str
    score: float  # what the evaluated version said
    label: bool  # what end users resolved it to


@dataclass(frozen=True)
class ConceptMetrics:
    concept: str
    n_pos: int
    n_neg: int
    too_few: bool
    precision: Estimate
    recall: Estimate
    f1: Estimate
    roc_auc: Estimate  # value None when only one class was labelled


@dataclass(frozen=True)
class TopConceptConfusion:
    """Rows are the true top concept, columns the predicted one, both in ``labels`` order."""

    labels: list[str]
    matrix: np.ndarray
    accuracy: Estimate
    n_skipped: int  # outputs without exactly one positive concept


@dataclass(frozen=True)
class ConceptReport:
    threshold: float
    n_records: int
    n_outputs: int
    concepts: dict[str, ConceptMetrics]
    macro_auc: Estimate
    macro_auc_concepts: list[str]  # the concepts averaged (AUC defined)
    top_concept: TopConceptConfusion

    def figures(self) -> dict[str, Estimate]:
        """The headline figures by name, as :func:`visionloop.learning.promotion.decide` takes them."""
        return {"macro_auc": self.macro_auc, "top_concept_accuracy": self.top_concept.accuracy}


def _weighted_auc(scores: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC per row of ``weights`` (Mann–Whitney, ties count half); NaN where a class is absent."""
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[:, order]
    pos = np.add.reduceat(w * y[order], starts, axis=1)
    neg = np.add.reduceat(w * (1 - y[order]), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    numerator = np.sum(pos * (below + 0.5 * neg), axis=1)
    denominator = pos.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def _concept_metrics(concept: str, scores: np.ndarray, y: np.ndarray, weights: np.ndarray,
                     threshold: float, min_count: int, confidence: float) -> tuple[ConceptMetrics, np.ndarray]:
    n_pos, n_neg = int(y.sum()), int((1 - y).sum())
    too_few = n_pos < min_count or n_neg < min_count
    predicted = (scores >= threshold).astype(float)
    # labels=[1] rather than average="binary": the same figures without a warning when all the
    # records of a concept carry one label.
    (p,), (r,), (f,), _ = precision_recall_fscore_support(y, predicted, labels=[1.0], average=None,
                                                          zero_division=np.nan)
    auc = float(roc_auc_score(y, scores)) if n_pos and n_neg else None

    tp = weights @ (y * predicted)
    fp = weights @ ((1 - y) * predicted)
    fn = weights @ (y * (1 - predicted))
    boot_auc = _weighted_auc(scores, y, weights)

    def estimate(value: float | None, samples: np.ndarray) -> Estimate:
        low, high = interval(samples, confidence) if value is not None else (None, None)
        return Estimate(value, low, high, n=n_pos + n_neg, too_few=too_few)

    metrics = ConceptMetrics(
        concept, n_pos, n_neg, too_few,
        precision=estimate(defined(p), ratio(tp, tp + fp, np.nan)),
        recall=estimate(defined(r), ratio(tp, tp + fn, np.nan)),
        f1=estimate(defined(f), ratio(2 * tp, 2 * tp + fp + fn, np.nan)),
        roc_auc=estimate(auc, boot_auc),
    )
    return metrics, boot_auc


def _top_concept(records: list[ConceptRecord], out_index: dict[Hashable, int], counts: np.ndarray,
                 predicted_top: Mapping[Hashable, str] | None, min_count: int,
                 confidence: float) -> TopConceptConfusion:
    by_output: dict[Hashable, list[ConceptRecord]] = {}
    for rec in records:
        by_output.setdefault(rec.output_id, []).append(rec)
    truth, guess, used = [], [], []
    for output_id, recs in by_output.items():
        positives = [r.concept for r in recs if r.label]
        if len(positives) != 1:
            continue
        if predicted_top is not None and output_id in predicted_top:
            top = predicted_top[output_id]
        else:  # highest score among the labelled concepts; ties go to the first recorded
            top = max(recs, key=lambda r: r.score).concept
        truth.append(positives[0])
        guess.append(top)
        used.append(out_index[output_id])
    labels = sorted(set(truth) | set(guess))
    if not truth:
        return TopConceptConfusion(labels, np.zeros((0, 0), dtype=int), Estimate(None, too_few=True),
                                   len(by_output))
    with warnings.catch_warnings():
        # sklearn warns on any 1x1 matrix even when ``labels`` is given; one concept is legitimate.
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        matrix = confusion_matrix(truth, guess, labels=labels)
    correct = (np.array(truth) == np.array(guess)).astype(float)
    w = counts[:, used]
    low, high = interval(ratio(w @ correct, w.sum(axis=1)), confidence)
    accuracy = Estimate(float(accuracy_score(truth, guess)), low, high, n=len(truth),
                        too_few=len(truth) < min_count)
    return TopConceptConfusion(labels, matrix, accuracy, len(by_output) - len(truth))


def evaluate_concepts(
    records: Iterable[ConceptRecord],
    *,
    threshold: float = 0.5,
    min_count: int = MIN_COUNT,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
    predicted_top: Mapping[Hashable, str] | None = None,
) -> ConceptReport:
    """Evaluate one version on labelled (output, concept) records.

    A concept counts as predicted when its score is ``>= threshold``. ``predicted_top`` may give
    each output's top concept over the model's whole vocabulary; otherwise it is the best-scored
    labelled concept. Same records and seed, same report.
    """
    records = list(records)
    out_index: dict[Hashable, int] = {}
    for rec in records:
        out_index.setdefault(rec.output_id, len(out_index))
    counts = resample_counts(len(out_index), n_resamples, seed)

    by_concept: dict[str, list[ConceptRecord]] = {}
    for rec in records:
        by_concept.setdefault(rec.concept, []).append(rec)
    concepts: dict[str, ConceptMetrics] = {}
    auc_samples, auc_concepts = [], []
    for concept in sorted(by_concept):
        recs = by_concept[concept]
        scores = np.array([r.score for r in recs], dtype=float)
        y = np.array([bool(r.label) for r in recs], dtype=float)
        weights = counts[:, [out_index[r.output_id] for r in recs]]
        metrics, boot_auc = _concept_metrics(concept, scores, y, weights, threshold, min_count, confidence)
        concepts[concept] = metrics
        if metrics.roc_auc.value is not None:
            auc_samples.append(boot_auc)
            auc_concepts.append(concept)

    if auc_concepts:
        value = float(np.mean([concepts[c].roc_auc.value for c in auc_concepts]))
        stacked = np.vstack(auc_samples)
        defined = ~np.isnan(stacked).all(axis=0)
        boot = np.full(stacked.shape[1], np.nan)
        boot[defined] = np.nanmean(stacked[:, defined], axis=0)
        low, high = interval(boot, confidence)
        n_pos = sum(concepts[c].n_pos for c in auc_concepts)
        n_neg = sum(concepts[c].n_neg for c in auc_concepts)
        macro = Estimate(value, low, high, n=n_pos + n_neg, too_few=n_pos < min_count or n_neg < min_count)
    else:
        macro = Estimate(None, n=len(records), too_few=True)

    top = _top_concept(records, out_index, counts, predicted_top, min_count, confidence)
    return ConceptReport(threshold, len(records), len(out_index), concepts, macro, auc_concepts, top)
