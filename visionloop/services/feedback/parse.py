"""Feedback request bodies (Clarifai v2 JSON) -> plain, validated values.

Parsing is total: any JSON value either becomes a :class:`ModelFeedbackIn` /
:class:`SearchFeedbackIn` or raises an :class:`~visionloop.errors.ApiError` whose details name
the field and the reason (``input.data.regions[1].region_info.bounding_box.top_row: ...``).

Lenient exactly where the official clients differ (see DESIGN.md and the clients' captured
requests in wire/, in the ``shared/`` folder that lies beside the repository):

- concept ``value``: ``true``/``false`` (js, curl, grpc JSON) or ``1.0``/``0.0`` (Python 2.6.2);
  missing or ``null`` means present, as when annotating inputs;
- enums by name or number: ``event_type`` search_click = 1, annotation = 2 (0 /
  ``EVENT_TYPE_NOT_SET`` counts as missing); region ``feedback`` accurate = 0, misplaced = 1,
  not_detected = 2, false_positive = 3, missing or ``null`` = accurate (protobuf omits defaults);
- a missing or ``null`` box coordinate is 0 (protobuf omits zeros);
- ``null`` for any optional field; unknown fields (``user_app_id``, ``status``...) are ignored.

As Clarifai accepted it (its own client test suite sends these): concepts and regions in one
body (both recorded); a region naming no concept (an accurate box, nothing said of what it
shows); a face region whose ``data.face`` carries ``identity``, ``age_appearance``,
``gender_appearance`` and ``multicultural_appearance`` concept lists, with or without
``data.concepts``.

Strict where a wrong value would change the meaning: ids are strings, coordinates are finite
numbers in [0, 1] with top < bottom and left < right, a concept value is presence (true/false or
1/0 — 0.7 is not a statement about presence), enum names are known, lists are not empty.
Rules that need the output (does the region id exist, is the model a detector) live in
:mod:`.record`.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Sequence
from typing import Any, TypeVar

from visionloop import errors
from visionloop.learning.boxes import Box
from visionloop.learning.vocabulary import (
    EVENT_TYPE_NUMBERS,
    REGION_FEEDBACK_NUMBERS,
    EventKind,
    EventType,
    RegionFeedback,
)

E = TypeVar("E", bound=enum.StrEnum)

MAX_ITEMS = 1000      # concepts per list, regions per input
MAX_TEXT = 255        # ids, end user and session ids (the columns' width)
MAX_URL = 8192
COORDINATES = ("top_row", "left_col", "bottom_row", "right_col")
FACE_ATTRIBUTES = ("identity", "age_appearance", "gender_appearance", "multicultural_appearance")
_PLAIN_INTEGER = re.compile(r"-?[0-9]{1,9}")  # str.isdigit() takes '²' and '٢', which int() refuses or reads


@dataclasses.dataclass(frozen=True)
class ConceptIn:
    """A statement about one concept: ``ref`` (an id or a name) is present or absent."""

    ref: str
    name: str | None
    present: bool
    field: str  # where it was in the body, for error messages


@dataclasses.dataclass(frozen=True)
class RegionIn:
    feedback: RegionFeedback
    box: Box | None
    region_id: str | None
    concepts: tuple[ConceptIn, ...]
    field: str
    face: tuple[tuple[str, tuple[ConceptIn, ...]], ...] = ()  # (attribute, its concepts), data.face


@dataclasses.dataclass(frozen=True)
class ImageRef:
    """What the body says the image is: recorded as given, never fetched."""

    url: str | None = None
    base64: str | None = None


@dataclasses.dataclass(frozen=True)
class FeedbackInfo:
    event_type: EventType
    end_user_id: str | None
    session_id: str | None
    output_id: str | None = None
    search_id: str | None = None


@dataclasses.dataclass(frozen=True)
class ModelFeedbackIn:
    input_id: str | None
    image: ImageRef | None
    concepts: tuple[ConceptIn, ...]   # concept feedback (concept models) ...
    regions: tuple[RegionIn, ...]     # ... and/or region feedback (detection models)
    info: FeedbackInfo

    @property
    def kind(self) -> EventKind:
        return EventKind.REGIONS if self.regions else EventKind.CONCEPTS


@dataclasses.dataclass(frozen=True)
class SearchFeedbackIn:
    input_id: str
    info: FeedbackInfo


def invalid(field: str, reason: str) -> errors.InvalidRequest:
    return errors.InvalidRequest(f"{field}: {reason}")


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# -- primitives -----------------------------------------------------------------------------------
def _object(value: Any, field: str, *, required: bool = False) -> dict[str, Any] | None:
    if value is None:
        if required:
            raise invalid(field, "is required (an object)")
        return None
    if not isinstance(value, dict):
        raise invalid(field, f"must be an object, got {kind_of(value)}")
    return value


def _list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(field, f"must be a list, got {kind_of(value)}")
    if len(value) > MAX_ITEMS:
        raise invalid(field, f"at most {MAX_ITEMS} items, got {len(value)}")
    return value


def _text(value: Any, field: str, *, required: bool = False, what: str = "a string",
          limit: int = MAX_TEXT) -> str | None:
    """A string; ``null`` or ``""`` is absent (protobuf's default). No NUL: no id or name holds one,
    and PostgreSQL can neither store nor look up text with one."""
    if value is None or value == "":
        if required:
            raise invalid(field, f"is required ({what})")
        return None
    if not isinstance(value, str):
        raise invalid(field, f"must be {what}, got {kind_of(value)}")
    if len(value) > limit:
        raise invalid(field, f"at most {limit} characters, got {len(value)}")
    if "\x00" in value:
        raise invalid(field, "must not contain NUL characters")
    return value


def _enum(value: Any, field: str, table: dict[int, E], *, unset: tuple[Any, ...] = ()) -> E | None:
    """An enum given by name (any case) or number, also as text of plain ASCII digits (as protobuf's
    JSON parser takes it: ``"2"``, not ``"²"``, ``"٢"`` or ``"--2"``); ``None`` when absent."""
    allowed = ", ".join(f"{name} ({num})" for num, name in table.items())
    if isinstance(value, bool) or not isinstance(value, (int, str, type(None))):
        shown = repr(value)[:40] if isinstance(value, (bool, float)) else kind_of(value)
        raise invalid(field, f"must be one of {allowed} (by name or integer), got {shown}")
    if isinstance(value, str) and _PLAIN_INTEGER.fullmatch(value):
        value = int(value)
    if value is None or value in unset:
        return None
    if isinstance(value, int):
        if value not in table:
            raise invalid(field, f"unknown value {value}; expected one of {allowed}")
        return table[value]
    by_name = {name: name for name in table.values()}
    found = by_name.get(value.strip().lower())
    if found is None:
        raise invalid(field, f"unknown value {value[:40]!r}; expected one of {allowed}")
    return found


def _presence(value: Any, field: str) -> bool:
    if value is None:
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    shown = repr(value)[:40] if not isinstance(value, (dict, list)) else kind_of(value)
    raise invalid(field, f"must be true/false (or 1/0) saying whether the concept is present, got {shown}")


def _coordinate(value: Any, field: str) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(field, f"must be a number within [0, 1], got {kind_of(value)}")
    x = float(value)
    if not math.isfinite(x) or not 0.0 <= x <= 1.0:
        raise invalid(field, f"must be a fraction of the image within [0, 1], got {value}")
    return x


def parse_box(value: Any, field: str) -> Box | None:
    """A bounding box of fractions; a missing coordinate is 0; empty or inverted boxes are refused."""
    raw = _object(value, field)
    if raw is None:
        return None
    top, left, bottom, right = (_coordinate(raw.get(c), f"{field}.{c}") for c in COORDINATES)
    if not top < bottom:
        raise invalid(field, f"top_row ({top}) must be less than bottom_row ({bottom}) "
                             "(a missing coordinate counts as 0)")
    if not left < right:
        raise invalid(field, f"left_col ({left}) must be less than right_col ({right}) "
                             "(a missing coordinate counts as 0)")
    return Box(top, left, bottom, right)


# -- pieces ---------------------------------------------------------------------------------------
def parse_concepts(value: Any, field: str) -> tuple[ConceptIn, ...]:
    """Concept statements; a concept named twice must say the same thing both times."""
    out: list[ConceptIn] = []
    seen: dict[str, ConceptIn] = {}
    for i, item in enumerate(_list(value, field)):
        f = f"{field}[{i}]"
        raw = _object(item, f, required=True)
        assert raw is not None
        cid = _text(raw.get("id"), f"{f}.id")
        name = _text(raw.get("name"), f"{f}.name")
        ref = cid or name
        if ref is None:
            raise invalid(f, "a concept needs an id or a name")
        concept = ConceptIn(ref=ref, name=name, present=_presence(raw.get("value"), f"{f}.value"), field=f)
        before = seen.get(ref)
        if before is not None:
            if before.present != concept.present:
                raise invalid(f, f"concept {ref!r} is also in {before.field} with the opposite value")
            continue
        seen[ref] = concept
        out.append(concept)
    return tuple(out)


def parse_region(value: Any, field: str) -> RegionIn:
    raw = _object(value, field, required=True)
    assert raw is not None
    info = _object(raw.get("region_info"), f"{field}.region_info") or {}
    feedback = (_enum(info.get("feedback"), f"{field}.region_info.feedback", REGION_FEEDBACK_NUMBERS)
                or RegionFeedback.ACCURATE)
    box = parse_box(info.get("bounding_box"), f"{field}.region_info.bounding_box")
    region_id = _text(raw.get("id"), f"{field}.id")
    data = _object(raw.get("data"), f"{field}.data") or {}
    concepts = parse_concepts(data.get("concepts"), f"{field}.data.concepts")
    face = parse_face(data.get("face"), f"{field}.data.face")
    if feedback in (RegionFeedback.MISPLACED, RegionFeedback.NOT_DETECTED) and box is None:
        what = "the corrected box" if feedback == RegionFeedback.MISPLACED else "the box the model missed"
        raise invalid(f"{field}.region_info.bounding_box", f"a {feedback} region must carry {what}")
    if feedback == RegionFeedback.NOT_DETECTED and region_id is not None:
        raise invalid(f"{field}.id", "a not_detected region is one the model missed, so it cannot name a "
                                     f"predicted region (got id {region_id!r}); use misplaced to correct one")
    if box is None and region_id is None:
        raise invalid(f"{field}.region_info.bounding_box",
                      "a region needs a bounding_box, or the id of the predicted region it is about")
    return RegionIn(feedback=feedback, box=box, region_id=region_id, concepts=concepts, field=field, face=face)


def parse_face(value: Any, field: str) -> tuple[tuple[str, tuple[ConceptIn, ...]], ...]:
    """``data.face``: each attribute's concept list, in :data:`FACE_ATTRIBUTES` order (others ignored)."""
    raw = _object(value, field) or {}
    out = []
    for attribute in FACE_ATTRIBUTES:
        group = _object(raw.get(attribute), f"{field}.{attribute}") or {}
        concepts = parse_concepts(group.get("concepts"), f"{field}.{attribute}.concepts")
        if concepts:
            out.append((attribute, concepts))
    return tuple(out)


def parse_regions(value: Any, field: str) -> tuple[RegionIn, ...]:
    """Regions, a region repeated word for word kept once (1000 copies of one box are one vote, not
    1000); one box given two different verdicts is refused."""
    out: list[RegionIn] = []
    verdicts: dict[tuple[Box | None, str | None], RegionIn] = {}
    for i, item in enumerate(_list(value, field)):
        region = parse_region(item, f"{field}[{i}]")
        before = verdicts.setdefault((region.box, region.region_id), region)
        if before is not region:
            if before.feedback != region.feedback:
                raise invalid(region.field, f"the same region as {before.field} cannot be both {before.feedback} "
                                            f"and {region.feedback}")
            if _said(before.concepts) == _said(region.concepts) and _face_said(before) == _face_said(region):
                continue
        out.append(region)
    return tuple(out)


def _said(concepts: Sequence[ConceptIn]) -> set[tuple[str, bool]]:
    return {(c.ref, c.present) for c in concepts}


def _face_said(region: RegionIn) -> set[tuple[str, str, bool]]:
    return {(attribute, c.ref, c.present) for attribute, concepts in region.face for c in concepts}


def parse_image(value: Any, field: str) -> ImageRef | None:
    raw = _object(value, field)
    if raw is None:
        return None
    url = _text(raw.get("url"), f"{field}.url", limit=MAX_URL)
    b64 = raw.get("base64")
    if b64 is not None and not isinstance(b64, str):
        raise invalid(f"{field}.base64", f"must be a string, got {kind_of(b64)}")
    if url is None and not b64:
        return None
    return ImageRef(url=url, base64=b64 or None)


def parse_info(value: Any, field: str, *, expected: EventType) -> FeedbackInfo:
    """feedback_info: the event type must be the endpoint's; the reference id is required."""
    raw = _object(value, field, required=True)
    assert raw is not None
    event = _enum(raw.get("event_type"), f"{field}.event_type", EVENT_TYPE_NUMBERS, unset=(0, "EVENT_TYPE_NOT_SET"))
    if event is None:
        raise invalid(f"{field}.event_type", f"is required; this endpoint takes '{expected}'")
    if event != expected:
        where = ("POST /v2/searches/feedback" if event == EventType.SEARCH_CLICK
                 else "POST /v2/models/{model_id}/feedback")
        raise invalid(f"{field}.event_type", f"'{event}' does not fit this endpoint, which takes '{expected}' "
                                             f"('{event}' feedback goes to {where})")
    ref = "output_id" if expected == EventType.ANNOTATION else "search_id"
    ref_value = _text(raw.get(ref), f"{field}.{ref}", required=True,
                      what="the id of the " + ("prediction output" if ref == "output_id" else "search"))
    return FeedbackInfo(event_type=event,
                        end_user_id=_text(raw.get("end_user_id"), f"{field}.end_user_id"),
                        session_id=_text(raw.get("session_id"), f"{field}.session_id"),
                        **{ref: ref_value})


def parse_event_type(value: Any, field: str) -> EventType | None:
    """An event type by name or number (for filters); ``None`` when absent."""
    return _enum(value, field, EVENT_TYPE_NUMBERS)


def _root_input(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise errors.BadRequestFormat(f"the request body must be a JSON object, got {kind_of(body)}")
    raw = _object(body.get("input"), "input", required=True)
    assert raw is not None
    return raw


# -- bodies ---------------------------------------------------------------------------------------
def parse_model_feedback(body: Any) -> ModelFeedbackIn:
    """``{"input": {"id", "data": {"image", "concepts" | "regions"}, "feedback_info"}}``."""
    raw = _root_input(body)
    input_id = _text(raw.get("id"), "input.id")
    data = _object(raw.get("data"), "input.data", required=True)
    assert data is not None
    image = parse_image(data.get("image"), "input.data.image")
    concepts = parse_concepts(data.get("concepts"), "input.data.concepts")
    regions = parse_regions(data.get("regions"), "input.data.regions")
    if not concepts and not regions:
        given = [k for k in ("concepts", "regions") if isinstance(data.get(k), list)]
        reason = (f"{given[0]} is empty; say at least one concept or region" if given else
                  "needs concepts (for a concept model) or regions (for a detection model)")
        raise invalid(f"input.data.{given[0]}" if given else "input.data", reason)
    info = parse_info(raw.get("feedback_info"), "input.feedback_info", expected=EventType.ANNOTATION)
    return ModelFeedbackIn(input_id=input_id, image=image, concepts=concepts, regions=regions, info=info)


def parse_search_feedback(body: Any) -> SearchFeedbackIn:
    """``{"input": {"id": <the clicked hit>, "feedback_info": {"event_type", "search_id", ...}}}``."""
    raw = _root_input(body)
    input_id = _text(raw.get("id"), "input.id", required=True, what="the id of the clicked input")
    assert input_id is not None
    info = parse_info(raw.get("feedback_info"), "input.feedback_info", expected=EventType.SEARCH_CLICK)
    return SearchFeedbackIn(input_id=input_id, info=info)
