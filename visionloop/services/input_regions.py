"""An input's annotated regions: boxes with the concepts the app says each shows, or does not.

They come as Clarifai's clients send them on ``POST`` and ``PATCH /v2/inputs``: ``data.regions[]``,
each with ``region_info.bounding_box`` and ``data.concepts`` (value true/1.0: shown, false/0.0: not
shown), optionally an ``id``. They are validated as region feedback is (the same parser: fractions
in [0, 1], top < bottom and left < right, a missing coordinate is 0, errors name the field), and
teach the detection models that learn from boxes
(:mod:`visionloop.services.training.detection_learning`).

``PATCH`` semantics, per region given (a region is found by its ``id``, else by its exact box):

- ``merge``: a found region takes the box given (if any) and the concepts given (a concept already
  there takes the new value); a region not found is added (it needs a box and a concept);
- ``overwrite``: when ``regions`` is in the body (even empty), the input's regions become exactly
  those given; without it they stay;
- ``remove``: a found region loses the concepts given, and goes when none is left or none was
  given; a region not found is ignored (as removing an absent concept is).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from visionloop.ids import is_valid_client_id, new_id
from visionloop.learning.boxes import Box
from visionloop.learning.vocabulary import RegionFeedback
from visionloop.services.concepts import check_concept_id, ensure_concepts
from visionloop.services.feedback.parse import invalid, parse_regions
from visionloop.store.tables import InputRegion

RegionAction = Literal["merge", "overwrite", "remove"]


@dataclasses.dataclass(frozen=True)
class RegionAnnotation:
    """A region as given: ``concepts`` are (concept id, shown) pairs; ``field`` names it in errors."""

    id: str | None
    box: Box | None
    concepts: tuple[tuple[str, bool], ...]
    field: str


def parse_input_regions(raw: Any, field: str) -> tuple[RegionAnnotation, ...] | None:
    """``data.regions`` of an input; ``None`` when the body has none (PATCH overwrite keeps them)."""
    if raw is None:
        return None
    out: list[RegionAnnotation] = []
    ids: dict[str, str] = {}
    for region in parse_regions(raw, field):
        if region.feedback != RegionFeedback.ACCURATE:
            raise invalid(f"{region.field}.region_info.feedback", f"an input's region is an annotation, not "
                          f"feedback on a prediction: leave feedback out (got {region.feedback!r}); feedback goes "
                          "to POST /v2/models/{model_id}/feedback")
        if region.region_id is not None:
            if not is_valid_client_id(region.region_id):
                raise invalid(f"{region.field}.id", f"{region.region_id!r} must be 1-64 letters, digits, '_', '.', "
                                                    "':' or '-' starting with a letter or digit")
            if region.region_id in ids:
                raise invalid(f"{region.field}.id", f"region {region.region_id!r} is also {ids[region.region_id]}")
            ids[region.region_id] = region.field
        for c in region.concepts:
            check_concept_id(c.ref, f"{c.field}.id")
        out.append(RegionAnnotation(region.region_id, region.box, tuple((c.ref, c.present) for c in region.concepts),
                                    region.field))
    return tuple(out)


def box_of(row: InputRegion) -> Box:
    return Box(row.top_row, row.left_col, row.bottom_row, row.right_col)


def regions_of(s: Session, app_id: str, input_ids: Sequence[str]) -> dict[str, list[InputRegion]]:
    """The stored regions of these inputs, in the order given."""
    out: dict[str, list[InputRegion]] = {}
    if not input_ids:
        return out
    q = (select(InputRegion).where(InputRegion.app_id == app_id, InputRegion.input_id.in_(list(input_ids)))
         .order_by(InputRegion.input_id, InputRegion.position))
    for row in s.scalars(q):
        out.setdefault(row.input_id, []).append(row)
    return out


def write_regions(s: Session, app_id: str, input_id: str, regions: Sequence[RegionAnnotation],
                  action: RegionAction) -> None:
    """Apply ``regions`` to an input's stored regions (the module's rules); a new input merges."""
    stored = regions_of(s, app_id, [input_id]).get(input_id, [])
    if action == "overwrite":
        for gone in stored:
            s.delete(gone)
        stored = []
    by_id = {row.id: row for row in stored}
    by_box = {box_of(row): row for row in stored}
    position = max((row.position for row in stored), default=-1) + 1
    for region in regions:
        row = by_id.get(region.id) if region.id is not None else by_box.get(region.box) if region.box else None
        if action == "remove":
            if row is not None:
                named = {cid for cid, _ in region.concepts}
                left = [c for c in row.concepts if c["id"] not in named] if named else []
                if left:
                    row.concepts = left
                else:
                    s.delete(row)
                    by_id.pop(row.id, None)
                    by_box.pop(box_of(row), None)
            continue
        if row is None:
            if region.box is None:
                raise invalid(f"{region.field}.region_info.bounding_box", f"this input has no region {region.id!r}; "
                                                                          "a new region needs a bounding_box")
            if not region.concepts:
                raise invalid(f"{region.field}.data.concepts", "a new region needs at least one concept (value true: "
                                                               "the box shows it, false: it does not)")
            row = InputRegion(app_id=app_id, input_id=input_id, id=region.id or new_id(), position=position,
                              concepts=[])
            position += 1
            s.add(row)
            by_id[row.id] = row
        if region.box is not None:
            if row.top_row is not None:  # moved: its old box no longer finds it
                by_box.pop(box_of(row), None)
            row.top_row, row.left_col, row.bottom_row, row.right_col = (region.box.top, region.box.left,
                                                                        region.box.bottom, region.box.right)
            by_box[region.box] = row
        merged = {c["id"]: c for c in row.concepts}
        merged.update({cid: {"id": cid, "value": 1.0 if shown else 0.0} for cid, shown in region.concepts})
        row.concepts = list(merged.values())  # a new list: SQLAlchemy sees the change
    if action != "remove":
        ensure_concepts(s, app_id, sorted({cid for r in regions for cid, _ in r.concepts}))
    s.flush()
