"""The feedback vocabulary: members are their wire strings, numbers are the protobuf enums'."""

from __future__ import annotations

import json

from visionloop.learning.vocabulary import (
    EVENT_TYPE_NUMBERS,
    REGION_FEEDBACK_NUMBERS,
    EventKind,
    EventType,
    RegionFeedback,
)


def test_members_compare_and_serialise_as_the_wire_strings() -> None:
    assert EventType.SEARCH_CLICK == "search_click" and f"{EventType.ANNOTATION}" == "annotation"
    assert json.dumps({"kind": EventKind.REGIONS, "feedback": RegionFeedback.NOT_DETECTED}) == \
        '{"kind": "regions", "feedback": "not_detected"}'


def test_enum_numbers_are_the_protobuf_ones() -> None:
    assert EVENT_TYPE_NUMBERS == {1: "search_click", 2: "annotation"}
    assert REGION_FEEDBACK_NUMBERS == {0: "accurate", 1: "misplaced", 2: "not_detected", 3: "false_positive"}
    assert [RegionFeedback.parse(n) for n in range(4)] == list(REGION_FEEDBACK_NUMBERS.values())
    assert RegionFeedback.parse(None) is RegionFeedback.ACCURATE
