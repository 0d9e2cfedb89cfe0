"""Champion/challenger: a new model version replaces the current one only if it is not worse.

Why: versions are trained from end-user feedback that can be thin or noisy; a version that looks
better on a handful of labels is as likely to be worse. The rule, per metric evaluated on the
same held-out feedback (macro ROC AUC or top-concept accuracy, region F1, search NDCG/MRR):

1. the challenger's primary metric must be defined and not rest on too few labels;
2. with no champion (or none with a defined figure) the challenger is promoted;
3. otherwise every metric both were evaluated on must satisfy
   ``challenger >= champion - tolerance`` (reversed for lower-is-better metrics); guard metrics
   the challenger has too few labels for are reported but do not block.

A tie within the tolerance promotes: the challenger carries the newer feedback.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from visionloop.learning.estimates import Estimate

TOLERANCE = 0.01


@dataclass(frozen=True)
class Comparison:
    metric: str
    champion: Estimate | None
    challenger: Estimate
    delta: float | None  # challenger - champion, signed so that positive is better
    ok: bool
    note: str


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    comparisons: list[Comparison]


def _describe(e: Estimate | None) -> str:
    if e is None or e.value is None:
        return "undefined"
    interval = f" [{e.low:.3f}, {e.high:.3f}]" if e.low is not None and e.high is not None else ""
    return f"{e.value:.3f}{interval} on {e.n} labels"


def _compare(metric: str, champion: Estimate | None, challenger: Estimate, tolerance: float,
             lower_is_better: bool, primary: bool) -> Comparison:
    if challenger.value is None or challenger.too_few:
        note = f"{metric}: the candidate's {_describe(challenger)} rests on too few labels"
        return Comparison(metric, champion, challenger, None, not primary, note)
    if champion is None or champion.value is None:
        return Comparison(metric, champion, challenger, None, True,
                          f"{metric}: {_describe(challenger)}, nothing to compare with")
    delta = challenger.value - champion.value
    if lower_is_better:
        delta = -delta
    ok = delta >= -tolerance
    verdict = "better" if delta > tolerance else ("a tie" if ok else "worse")
    note = (f"{metric}: {_describe(challenger)} vs {_describe(champion)} — {verdict} "
            f"(delta {delta:+.3f}, tolerance {tolerance})")
    return Comparison(metric, champion, challenger, delta, ok, note)


def decide(
    champion: Mapping[str, Estimate] | None,
    challenger: Mapping[str, Estimate],
    *,
    primary: str,
    tolerance: float | Mapping[str, float] = TOLERANCE,
    lower_is_better: Collection[str] = (),
) -> Decision:
    """Promote ``challenger`` over ``champion`` (None: no current version)? See the module rule.

    ``champion`` and ``challenger`` map metric names to :class:`Estimate`s from the same held-out
    feedback; ``primary`` names the headline metric.
    """
    if primary not in challenger:
        raise ValueError(f"the candidate has no {primary!r} figure (has {sorted(challenger)})")

    def tol(metric: str) -> float:
        value = tolerance.get(metric, TOLERANCE) if isinstance(tolerance, Mapping) else tolerance
        if value < 0:
            raise ValueError(f"tolerance must be >= 0, got {value} for {metric}")
        return value

    current = champion or {}
    metrics = [primary] + sorted(m for m in challenger if m != primary)
    comparisons = [
        _compare(m, current.get(m), challenger[m], tol(m), m in lower_is_better, m == primary)
        for m in metrics
    ]
    head = comparisons[0]
    if not head.ok:
        return Decision(False, f"refused: {head.note}", comparisons)
    if champion is None or current.get(primary) is None or current[primary].value is None:
        return Decision(True, f"promoted: no current version to beat; {head.note}", comparisons)
    worse = [c for c in comparisons if not c.ok]
    if worse:
        return Decision(False, "refused: " + "; ".join(c.note for c in worse), comparisons)
    return Decision(True, "promoted: " + "; ".join(c.note for c in comparisons), comparisons)
