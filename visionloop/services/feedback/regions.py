"""Tie region feedback to the regions an output predicted.

One rule, applied in two passes, one-to-one:

1. a region that names a predicted region (``id``, as the output showed it) is tied to it; an
   unknown id, or two feedback regions naming the same predicted region, is an error;
2. the others (except ``not_detected``, which by definition has no predicted region) are tied
   greedily, highest IoU first, to a still free predicted region: ``accurate`` and
   ``false_positive`` need IoU >= :data:`MATCH_IOU`; ``misplaced`` (its box is the correction, so
   it may sit far from the prediction) needs any overlap at all.

A region left untied is still feedback: an accurate box nobody predicted is a positive example
(the logo model's base version predicts nothing, so all its feedback is like that).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from visionloop.learning.boxes import Box
from visionloop.learning.vocabulary import RegionFeedback
from visionloop.services.feedback.parse import RegionIn, invalid

MATCH_IOU = 0.5


@dataclasses.dataclass(frozen=True)
class Predicted:
    id: str
    box: Box


@dataclasses.dataclass(frozen=True)
class Match:
    region_id: str | None
    iou: float | None
    by: str | None        # "id", "iou" or None (untied)
    box: Box              # the box the feedback is about: the one sent, else the predicted one


def predicted_regions(result: dict[str, Any]) -> list[Predicted]:
    """The regions stored with an output (``[top, left, bottom, right]`` boxes)."""
    return [Predicted(str(r["id"]), Box(*(float(x) for x in r["box"]))) for r in result.get("regions") or []]


def _threshold(feedback: RegionFeedback) -> float:
    return 1e-9 if feedback == RegionFeedback.MISPLACED else MATCH_IOU


def match_regions(regions: Sequence[RegionIn], predicted: Sequence[Predicted], output_id: str) -> list[Match]:
    by_id = {p.id: p for p in predicted}
    taken: dict[str, str] = {}  # predicted id -> field of the feedback region that claimed it
    matches: list[Match | None] = [None] * len(regions)
    for i, r in enumerate(regions):
        if r.region_id is None:
            continue
        p = by_id.get(r.region_id)
        if p is None:
            known = ", ".join(sorted(by_id)[:10]) or "none"
            raise invalid(f"{r.field}.id", f"output {output_id!r} has no region {r.region_id!r} "
                                           f"(its regions: {known})")
        if p.id in taken:
            raise invalid(f"{r.field}.id", f"region {p.id!r} already has feedback in {taken[p.id]}")
        taken[p.id] = r.field
        matches[i] = Match(p.id, None if r.box is None else round(r.box.iou(p.box), 6), "id", r.box or p.box)

    pairs = []
    for i, r in enumerate(regions):
        if matches[i] is not None or r.feedback == RegionFeedback.NOT_DETECTED:
            continue
        assert r.box is not None  # parse: a region without an id has a box
        for p in predicted:
            if p.id not in taken:
                iou = r.box.iou(p.box)
                if iou >= _threshold(r.feedback):
                    pairs.append((-iou, i, p.id))
    for neg_iou, i, pid in sorted(pairs):
        if matches[i] is None and pid not in taken:
            taken[pid] = regions[i].field
            box = regions[i].box
            assert box is not None
            matches[i] = Match(pid, round(-neg_iou, 6), "iou", box)

    out = []
    for r, m in zip(regions, matches):
        if m is None:
            assert r.box is not None
            m = Match(None, None, None, r.box)
        out.append(m)
    return out

