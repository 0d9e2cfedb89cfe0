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

A concept the champion does not have cannot be compared with it: :func:`decide_new_concepts`
lets it go live on its own cross-validated evidence, and says what more would change a refusal.
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


NEW_CONCEPT_AUC = 0.75  # a concept the champion lacks goes live above this cross-validated ROC AUC
NEW_CONCEPT_LABELS = 10  # ... resting on at least this many positive and as many negative labels


@dataclass(frozen=True)
class NewConcept:
    """A concept the champion cannot score, with the challenger's cross-validated evidence on it."""

    name: str  # as people read it, e.g. "cat (n02121808)"
    roc_auc: Estimate
    n_pos: int
    n_neg: int


def _new_concept_note(c: NewConcept, bar: float, min_labels: int) -> tuple[bool, str]:
    """Whether a new concept clears the bar, and what its evidence says (or lacks)."""
    missing = [f"{min_labels - n} more {kind} label{'s' if min_labels - n != 1 else ''}"
               for n, kind in ((c.n_pos, "positive"), (c.n_neg, "negative")) if n < min_labels]
    counts = f"{c.n_pos} positive and {c.n_neg} negative labels"
    if missing:
        return False, f"{c.name}: {counts}; {' and '.join(missing)} of {c.name} would let its cross-validated " \
                      f"AUC count (at least {min_labels} of each)"
    if c.roc_auc.value is None or c.roc_auc.value < bar:
        return False, f"{c.name}: cross-validated AUC {_describe(c.roc_auc)}, below the bar of {bar:.2f}; more " \
                      f"labels of {c.name} (positive and negative, on varied images) could raise it"
    return True, f"{c.name}: cross-validated AUC {_describe(c.roc_auc)} clears the bar of {bar:.2f} ({counts})"


def decide_new_concepts(shared: Decision | None, new: list[NewConcept], *, bar: float = NEW_CONCEPT_AUC,
                        min_labels: int = NEW_CONCEPT_LABELS) -> Decision:
    """Promote a challenger that adds concepts the champion lacks?

    Those concepts cannot be compared with the champion: each goes live on its own cross-validated
    evidence (an AUC of at least ``bar`` on ``min_labels`` positive and negative labels), provided
    the concepts both versions score are not worse (``shared``, from :func:`decide`; None when no
    labelled concept is shared; a shared figure on too few labels does not block). Without new
    concepts this is ``shared``'s decision.
    """
    if not new:
        if shared is None:
            return Decision(False, "refused: no labelled concept to evaluate", [])
        return shared
    notes = [_new_concept_note(c, bar, min_labels) for c in new]
    failing = [note for ok, note in notes if not ok]
    comparisons = shared.comparisons if shared is not None else []
    thin = shared is not None and not shared.promote and comparisons and comparisons[0].delta is None
    if shared is None:
        shared_note = "no concept it shares with the current version has labels to compare"
    elif thin:
        shared_note = f"shared concepts not compared: {comparisons[0].note}"
    else:
        shared_note = f"shared concepts: {shared.reason.split(': ', 1)[-1]}"
    if failing:
        return Decision(False, f"refused: new concept{'s' if len(failing) > 1 else ''} not ready: "
                               f"{'; '.join(failing)} ({shared_note})", comparisons)
    if shared is not None and not shared.promote and not thin:
        return Decision(False, f"refused: {shared_note}; the new concepts would go live on their own evidence "
                               f"({'; '.join(note for _, note in notes)})", comparisons)
    return Decision(True, f"promoted: new concepts go live on their own evidence: "
                          f"{'; '.join(note for _, note in notes)}; {shared_note}", comparisons)
