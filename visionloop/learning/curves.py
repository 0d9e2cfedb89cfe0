"""The curves a version's quality is drawn with, as numbers: precision-recall per concept and the
reliability diagram, from (score, label) records. The evaluation report plots them with
matplotlib, the console with uPlot in the browser: both from these."""

from __future__ import annotations

from dataclasses import dataclass

from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve

from visionloop.learning.metrics_concepts import ConceptRecord


@dataclass(frozen=True)
class Curve:
    concept: str
    n: int
    x: list[float]
    y: list[float]


def pr_curves(records: list[ConceptRecord], limit: int = 6) -> list[Curve]:
    """Precision (y) against recall (x), recall rising, for the ``limit`` best-labelled concepts
    that have both a positive and a negative label."""
    by_concept: dict[str, list[ConceptRecord]] = {}
    for r in records:
        by_concept.setdefault(r.concept, []).append(r)
    usable = sorted(((c, rs) for c, rs in by_concept.items() if len({r.label for r in rs}) == 2),
                    key=lambda cr: -len(cr[1]))[:limit]
    out = []
    for concept, rs in usable:
        precision, recall, _ = precision_recall_curve([r.label for r in rs], [r.score for r in rs])
        out.append(Curve(concept, len(rs), [float(v) for v in recall[::-1]], [float(v) for v in precision[::-1]]))
    return out


def calibration_points(records: list[ConceptRecord], bins: int = 10) -> Curve | None:
    """The mean score of each non-empty score band (x) against the share of it end users said
    present (y); None without both labels."""
    if len({r.label for r in records}) < 2:
        return None
    observed, predicted = calibration_curve([r.label for r in records], [r.score for r in records], n_bins=bins,
                                            strategy="uniform")
    return Curve("", len(records), [float(v) for v in predicted], [float(v) for v in observed])
