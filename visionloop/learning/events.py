"""Adapters from the feedback log's ``normalized`` bodies to this package's inputs.

The shapes are :class:`~visionloop.learning.vocabulary.NormalizedEvent`, which
``visionloop.services.feedback.record`` stores (its module docstring tables them);
keeping the mapping here, as pure functions on dicts, lets labels and metrics be rebuilt from an
export of the log without a database::

    rebuild_labels(rows, lambda row: concept_votes(row.body["normalized"], row.end_user_id),
                   order=lambda row: row.seq)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from visionloop.learning.boxes import Box, as_box, iou
from visionloop.learning.labels import Vote
from visionloop.learning.metrics_regions import JudgedRegion
from visionloop.learning.vocabulary import EventKind, NormalizedEvent, NormalizedRegion, RegionFeedback


def image_key(normalized: NormalizedEvent) -> str | None:
    """What a label is about: the image digest when known (the same picture sent as two inputs
    is one item), else the input id."""
    return normalized.get("digest") or normalized.get("input_id")


def concept_votes(normalized: NormalizedEvent, end_user: str | None, weight: float = 1.0) -> list[Vote]:
    """One vote per concept of a feedback event (concept feedback, or region feedback that also said
    concepts of the whole image): ``item = (image key, concept id)``. Unlinked feedback whose image
    could not be resolved has no image key, so no votes."""
    key = image_key(normalized)
    if key is None:
        return []
    return [Vote((key, c["id"]), end_user, bool(c["value"]), weight) for c in normalized.get("concepts") or []]


def region_judgements(normalized: NormalizedEvent,
                      predicted: Mapping[str, tuple[Box, float]]) -> list[JudgedRegion]:
    """Judged regions of a region feedback event, one per concept of each region.

    ``predicted`` maps the output's region ids to (box, score). The event's ``box`` is the end
    user's box; a ``misplaced`` region not tied to a predicted one cannot be scored and is left out.
    """
    if normalized.get("kind") != EventKind.REGIONS:
        return []
    out = []
    for region in normalized.get("regions") or []:
        feedback = RegionFeedback.parse(region.get("feedback"))
        said = as_box(region["box"])
        tied = predicted.get(region.get("region_id") or "")
        if feedback is RegionFeedback.MISPLACED and tied is None:
            continue
        predicted_box = tied[0] if tied is not None else (None if feedback is RegionFeedback.NOT_DETECTED else said)
        corrected = said if feedback in (RegionFeedback.MISPLACED, RegionFeedback.NOT_DETECTED) else None
        score = tied[1] if tied is not None else None
        for concept_id in region_concept_ids(region):
            out.append(JudgedRegion(concept_id, feedback, predicted_box, corrected, score, region.get("region_id")))
    return out


def region_concept_ids(region: NormalizedRegion) -> list[str]:
    """What a region is judged for: its concepts, then its face attributes' concepts as
    ``attribute:id`` (``age_appearance:1``), each aggregated like a concept of the region."""
    ids = [c["id"] for c in region.get("concepts") or []]
    for attribute, concepts in (region.get("face") or {}).items():
        ids += [f"{attribute}:{c['id']}" for c in concepts]
    return ids


SAME_BOX_IOU = 0.5  # two end users' boxes of one concept on one output overlapping this much are one region


def one_per_region(judged: Iterable[tuple[str, str | None, JudgedRegion]]) -> list[JudgedRegion]:
    """Each region judged once, however many end users judged it: ``judged`` is (output id, end
    user, judgement) in the order given. A region is a predicted region (its id) or, for boxes
    nobody predicted, boxes of one concept overlapping by :data:`SAME_BOX_IOU`; each user's last
    judgement of it is their vote, and the verdict is the most frequent, the latest on a tie.
    Metrics then count detections, not people: five users judging one face are one true positive.
    """
    regions: dict[tuple[Any, ...], dict[str | None, JudgedRegion]] = {}
    boxes: dict[tuple[str, str], list[tuple[Box, tuple[Any, ...]]]] = {}
    for output_id, user, region in judged:
        if region.region_id is not None:
            key: tuple[Any, ...] = (output_id, region.region_id, region.concept)
        else:
            box = as_box(region.corrected if region.corrected is not None else region.predicted)
            seen = boxes.setdefault((output_id, region.concept), [])
            key = next((k for b, k in seen if iou(b, box) >= SAME_BOX_IOU), ())
            if not key:
                key = (output_id, None, region.concept, len(seen))
                seen.append((box, key))
        votes = regions.setdefault(key, {})
        votes.pop(user, None)  # re-inserted last: the latest judgement stays the latest
        votes[user] = region
    out = []
    for votes in regions.values():
        said = list(votes.values())
        counts = Counter(r.feedback for r in said)
        top = max(counts.values())
        out.append(next(r for r in reversed(said) if counts[r.feedback] == top))
    return out


def verdicts(normalized: Mapping[str, Any]) -> list[tuple[str, str | None, bool]]:
    """``(concept id, concept name, negative)`` for each concept an annotation event judges: a
    concept said absent (``value`` false) and a region judged ``misplaced``, ``not_detected`` or
    ``false_positive`` are negative; a concept said present and an ``accurate`` region are not.
    What the feedback quality alarm counts (:mod:`visionloop.services.monitoring`)."""
    out = [(c["id"], c.get("name"), not c["value"]) for c in normalized.get("concepts") or []]
    for region in normalized.get("regions") or []:
        negative = RegionFeedback.parse(region.get("feedback")) is not RegionFeedback.ACCURATE
        names = {c["id"]: c.get("name") for c in region.get("concepts") or []}
        out += [(concept_id, names.get(concept_id), negative) for concept_id in region_concept_ids(region)]
    return out
