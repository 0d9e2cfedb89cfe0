"""Several end users' region feedback on one output, resolved into one statement per region.

Each user's latest statement about a region counts once; whether the region is real is then a
reliability-weighted vote (:func:`visionloop.learning.labels.aggregate`: each user's weight comes
from their agreement with the others), its right box that of the most trusted user calling it
real, and the missed boxes are those of users whose weight is not zero — so a careless or hostile
user cannot turn real faces into false positives, or add boxes that are not there, against the
others. Pure: the statements come from the normalized events
(:class:`~visionloop.learning.vocabulary.NormalizedRegion`); reading them is the services' job.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from visionloop.learning.boxes import Box, as_box, iou
from visionloop.learning.labels import Vote, aggregate
from visionloop.learning.vocabulary import NormalizedRegion, RegionFeedback

MATCH_IOU = 0.5  # a candidate is the region a not_detected box names
ACCURATE, MISPLACED = RegionFeedback.ACCURATE, RegionFeedback.MISPLACED
NOT_DETECTED, FALSE_POSITIVE = RegionFeedback.NOT_DETECTED, RegionFeedback.FALSE_POSITIVE


@dataclasses.dataclass
class Statements:
    """What is said about the predicted regions of one output, and the boxes it missed."""

    tied: dict[str, tuple[RegionFeedback, Box]] = dataclasses.field(default_factory=dict)
    missed: list[tuple[str, Box]] = dataclasses.field(default_factory=list)  # (concept, box)

    def add(self, region: NormalizedRegion, concepts: set[str] | None) -> None:
        """One statement; a later one about the same region or box replaces the earlier. Missed
        boxes count for ``concepts`` (None: whatever concept they name)."""
        feedback = RegionFeedback.parse(region.get("feedback"))
        box = as_box(region["box"])
        region_id = region.get("region_id")
        if region_id:
            self.tied[region_id] = (feedback, box)
            return
        if feedback is FALSE_POSITIVE:
            return  # about nothing that was predicted
        for c in region.get("concepts") or []:
            if (concepts is None or c["id"] in concepts) and c.get("value", 1.0) >= 0.5:
                self.miss(c["id"], box)

    def miss(self, concept: str, box: Box) -> None:
        self.missed = [m for m in self.missed if not (m[0] == concept and iou(m[1], box) >= MATCH_IOU)]
        self.missed.append((concept, box))


def resolve(by_user: dict[str, dict[str | None, Statements]]) -> dict[str, Statements]:
    """One :class:`Statements` per output from every end user's, by one reliability-weighted vote:
    on each predicted region (real, or a false positive) and on each missed box someone reported
    (every other user who judged that output and reported no such box says it is not there).
    A real region keeps the box of its most trusted judge, a missed box that of its most trusted
    reporter."""
    misses = {output_id: _missed_boxes(users) for output_id, users in by_user.items()}
    votes = [Vote((output_id, rid), user, feedback is not FALSE_POSITIVE)
             for output_id, users in by_user.items() for user, said in users.items()
             for rid, (feedback, _) in said.tied.items() if feedback is not NOT_DETECTED]
    votes += [Vote((output_id, "missed", k), user, user in reports)
              for output_id, users in by_user.items() for k, (_, reports) in enumerate(misses[output_id])
              for user in users]
    agg = aggregate(votes)
    weight = {user: r.weight for user, r in agg.users.items()}

    def most_trusted(options: list[tuple[str | None, Any]]) -> Any:
        return max(enumerate(options), key=lambda e: (weight.get(e[1][0], 0.0), e[0]))[1][1]  # then latest

    out: dict[str, Statements] = {}
    for output_id, users in by_user.items():
        merged = out[output_id] = Statements()
        for rid in dict.fromkeys(rid for said in users.values() for rid in said.tied):
            verdict = agg.labels.get((output_id, rid))
            if verdict is None:  # only "not_detected" about a predicted region: says nothing of it
                continue
            said_real = [(user, said.tied[rid]) for user, said in users.items()
                         if rid in said.tied and said.tied[rid][0] in (ACCURATE, MISPLACED)]
            if verdict.value and said_real:
                merged.tied[rid] = most_trusted(said_real)
            elif not verdict.value:
                merged.tied[rid] = (FALSE_POSITIVE, next(said.tied[rid][1] for said in users.values()
                                                         if rid in said.tied))
        for k, (concept, reports) in enumerate(misses[output_id]):
            if agg.labels[(output_id, "missed", k)].value:
                merged.miss(concept, most_trusted(list(reports.items())))
    return out


def _missed_boxes(users: dict[str | None, Statements]) -> list[tuple[str, dict[str | None, Box]]]:
    """The missed boxes of one output, those of different users matched by IoU: (concept, user -> box)."""
    found: list[tuple[str, dict[str | None, Box]]] = []
    for user, said in users.items():
        for concept, box in said.missed:
            same = next((reports for c, reports in found if c == concept and user not in reports
                         and any(iou(b, box) >= MATCH_IOU for b in reports.values())), None)
            if same is None:
                found.append((concept, {user: box}))
            else:
                same[user] = box
    return found
