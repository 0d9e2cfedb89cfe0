"""Live metrics of a model version, from the feedback on its own outputs.

What the version said is in its stored outputs; what is true is the label resolved from all the
feedback (reliability-weighted). Concept models get per-concept precision, recall, F1 and ROC AUC
with bootstrap intervals and counts (figures on too few labels are marked); detection models get
TP/FP/FN from region feedback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from visionloop.inference.catalog import EMBEDDING
from visionloop.learning.events import one_per_region, region_judgements
from visionloop.learning.labels import Label
from visionloop.learning.metrics_concepts import ConceptRecord, ConceptReport, evaluate_concepts
from visionloop.learning.metrics_regions import JudgedRegion, RegionMetrics, RegionReport, evaluate_regions
from visionloop.learning.vocabulary import EventType
from visionloop.services.training.concept_training import estimate_json
from visionloop.services.training.data import ConceptData, concept_data
from visionloop.store.tables import FeedbackEvent, Model, ModelVersion, Output


def concept_report_json(report: ConceptReport, names: Mapping[str, str]) -> dict[str, Any]:
    return {
        "macro_auc": estimate_json(report.macro_auc),
        "top_concept_accuracy": estimate_json(report.top_concept.accuracy),
        "n_records": report.n_records, "n_outputs": report.n_outputs, "threshold": report.threshold,
        "concepts": {c: {"name": names.get(c) or c, "n_pos": m.n_pos, "n_neg": m.n_neg, "too_few": m.too_few,
                         "precision": estimate_json(m.precision), "recall": estimate_json(m.recall),
                         "f1": estimate_json(m.f1), "roc_auc": estimate_json(m.roc_auc)}
                     for c, m in report.concepts.items()},
        "confusion": {"labels": report.top_concept.labels, "names": [names.get(c) or c for c in report.top_concept.labels],
                      "matrix": report.top_concept.matrix.tolist()},
    }


def region_report_json(report: RegionReport) -> dict[str, Any]:
    return {"summary": _region_metrics(report.overall),
            "concepts": {c: _region_metrics(m) for c, m in report.concepts.items()}}


def _region_metrics(m: RegionMetrics) -> dict[str, Any]:
    return {"tp": m.tp, "fp": m.fp, "fn": m.fn, "n_judged": m.n_judged, "too_few": m.too_few,
            "precision": estimate_json(m.precision), "recall": estimate_json(m.recall), "f1": estimate_json(m.f1),
            "mean_iou_misplaced": m.mean_iou_misplaced, "n_misplaced": m.n_misplaced}


def concept_records(s: Session, app_id: str, data: ConceptData, version: ModelVersion) -> list[ConceptRecord]:
    """(output, concept, what the version said, resolved label) for every judged concept of its outputs."""
    labels = data.aggregation.labels
    rows = s.execute(select(FeedbackEvent.output_id, Output.digest, Output.result)
                     .join(Output, Output.id == FeedbackEvent.output_id)
                     .where(FeedbackEvent.app_id == app_id, FeedbackEvent.version_id == version.id,
                            FeedbackEvent.event_type == EventType.ANNOTATION)).all()
    by_digest: dict[str, list[tuple[str, Label]]] = {}
    for (digest, concept), label in labels.items():
        by_digest.setdefault(digest, []).append((concept, label))
    records, seen = [], set()
    for output_id, digest, result in rows:
        said = {cid: value for cid, _, value in (result or {}).get("concepts", [])}
        for concept, label in by_digest.get(digest, []):
            if (output_id, concept) in seen:
                continue
            seen.add((output_id, concept))
            records.append(ConceptRecord(output_id, concept, float(said.get(concept, 0.0)), label.value))
    return records


def concept_metrics(s: Session, app_id: str, model: Model, version: ModelVersion) -> dict[str, Any]:
    data = concept_data(s, app_id, model)
    return concept_report_json(evaluate_concepts(concept_records(s, app_id, data, version)), data.names)


def region_metrics(s: Session, app_id: str, version: ModelVersion) -> dict[str, Any]:
    judged: list[tuple[str, str | None, JudgedRegion]] = []
    events = s.execute(select(FeedbackEvent.output_id, FeedbackEvent.end_user_id, FeedbackEvent.body, Output.result)
                       .join(Output, Output.id == FeedbackEvent.output_id)
                       .where(FeedbackEvent.app_id == app_id, FeedbackEvent.version_id == version.id,
                              FeedbackEvent.event_type == EventType.ANNOTATION)
                       .order_by(FeedbackEvent.seq))
    for output_id, user, body, result in events:
        predicted = {r["id"]: (tuple(r["box"]), r.get("value")) for r in (result or {}).get("regions", [])}
        judged += [(output_id, user, j) for j in region_judgements((body or {}).get("normalized", {}), predicted)]
    return region_report_json(evaluate_regions(one_per_region(judged)))


def unlinked_events(s: Session, app_id: str, model: Model, version: ModelVersion) -> int:
    """Feedback on this version stored unlinked (its output_id named no output here: see
    visionloop/services/feedback/record.py), which the metrics above cannot score; counted apart."""
    if model.model_type == EMBEDDING:
        where = [FeedbackEvent.event_type == EventType.SEARCH_CLICK, FeedbackEvent.search_id.is_(None)]
    else:
        where = [FeedbackEvent.model_pk == model.pk, FeedbackEvent.version_id == version.id,
                 FeedbackEvent.event_type == EventType.ANNOTATION, FeedbackEvent.output_id.is_(None)]
    return s.scalar(select(func.count()).select_from(FeedbackEvent)
                    .where(FeedbackEvent.app_id == app_id, *where)) or 0
