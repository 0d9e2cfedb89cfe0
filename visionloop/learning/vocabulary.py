"""The words of feedback, defined once: event types, region verdicts and the normalized event.

The values are the wire's strings (what clients send, what the feedback log stores), so a member
compares equal to, and serialises as, its string. The numbers are the protobuf enums' (clients may
send either). The normalized event is the ``body["normalized"]`` of a stored feedback event, built
by :mod:`visionloop.services.feedback.record` and read by learning; it lives here, with no
dependency, so that services and learning both import it without going up the layers.
"""

from __future__ import annotations

import enum
from typing import Any, TypedDict


class EventType(enum.StrEnum):
    """``feedback_info.event_type``: a click on a search hit, or an annotation of a prediction."""

    SEARCH_CLICK = "search_click"
    ANNOTATION = "annotation"


EVENT_TYPE_NUMBERS: dict[int, EventType] = {1: EventType.SEARCH_CLICK, 2: EventType.ANNOTATION}


class RegionFeedback(enum.StrEnum):
    """A region's verdict (``region_info.feedback``)."""

    ACCURATE = "accurate"
    MISPLACED = "misplaced"
    NOT_DETECTED = "not_detected"
    FALSE_POSITIVE = "false_positive"

    @classmethod
    def parse(cls, value: str | int | None) -> RegionFeedback:
        """The wire's name or enum number; missing means accurate (the protobuf default)."""
        if value is None:
            return cls.ACCURATE
        if isinstance(value, int):
            return list(cls)[value]  # declared in the order of their numbers
        return cls(value)


REGION_FEEDBACK_NUMBERS: dict[int, RegionFeedback] = dict(enumerate(RegionFeedback))  # accurate = 0, ...


class EventKind(enum.StrEnum):
    """What a normalized event says (its ``kind``)."""

    CONCEPTS = "concepts"
    REGIONS = "regions"
    SEARCH_CLICK = "search_click"


class NormalizedConcept(TypedDict, total=False):
    """A concept said of an image or a region: ``value`` 1.0 (present) or 0.0; ``source`` is
    "model", "app" or "new" (face attribute concepts, kept as sent, have none)."""

    id: str
    name: str
    value: float
    source: str


class NormalizedRegion(TypedDict, total=False):
    """A judged region: ``box`` is [top, left, bottom, right]; ``region_id`` the predicted region
    it is tied to (None if none), ``matched_by`` "id", "iou" or None, with that ``iou``."""

    feedback: RegionFeedback
    box: list[float]
    region_id: str | None
    matched_by: str | None
    iou: float | None
    concepts: list[NormalizedConcept]
    face: dict[str, list[NormalizedConcept]]


class NormalizedEvent(TypedDict, total=False):
    """What learning reads of a stored feedback event (the keys each ``kind`` carries are tabled
    in :mod:`visionloop.services.feedback.record`). ``digest`` is the judged image's (in the blob
    store), None when unknown; ``unlinked`` holds the ids as named when the output or search is
    unknown here."""

    kind: EventKind
    model_id: str
    version_id: str | None
    output_id: str | None
    input_id: str | None
    digest: str | None
    image: dict[str, Any] | None
    unlinked: dict[str, Any]
    concepts: list[NormalizedConcept]
    regions: list[NormalizedRegion]
    search_id: str | None
    rank: int | None
    score: float | None
    search_kind: str
