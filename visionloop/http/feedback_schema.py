"""The JSON Schemas and examples of the feedback bodies, for the OpenAPI document.

The bodies are parsed by hand (:mod:`visionloop.services.feedback.parse`, lenient where the clients
differ); these schemas document what that parser accepts so that clients and fuzzers know the
shape, and are built from the parser's own limits and enums so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from visionloop.learning.vocabulary import EVENT_TYPE_NUMBERS, REGION_FEEDBACK_NUMBERS, EventType
from visionloop.services.feedback.parse import COORDINATES, MAX_ITEMS, MAX_TEXT

CONCEPTS_EXAMPLE = {"input": {"id": "my-input", "data": {
    "image": {"url": "https://samples.clarifai.com/dog.tiff"},
    "concepts": [{"id": "dog", "value": True}, {"id": "cat", "value": False}]},
    "feedback_info": {"event_type": "annotation", "output_id": "<id of a predict output>",
                      "end_user_id": "user-1", "session_id": "session-1"}}}
REGIONS_EXAMPLE = {"input": {"id": "my-input", "data": {"regions": [
    {"id": "<id of a predicted region>", "region_info": {"feedback": "accurate"},
     "data": {"concepts": [{"id": "face", "value": True}]}},
    {"region_info": {"bounding_box": {"top_row": 0.2, "left_col": 0.1, "bottom_row": 0.3, "right_col": 0.2},
                     "feedback": "not_detected"}, "data": {"concepts": [{"id": "face", "value": True}]}}]},
    "feedback_info": {"event_type": "annotation", "output_id": "<id of a predict output>"}}}
SEARCH_EXAMPLE = {"input": {"id": "<id of the clicked hit's input>", "feedback_info": {
    "event_type": "search_click", "search_id": "<id of a search>", "end_user_id": "user-1",
    "session_id": "session-1"}}}

_NULL = {"type": "null"}
_TEXT = {"anyOf": [{"type": "string", "maxLength": MAX_TEXT}, _NULL]}
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_TEXT}
_PRESENCE = {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}, _NULL],
             "description": "true/false (or 1/0): is the concept there; missing or null means true"}
_CONCEPT = {"type": "object", "properties": {"id": _TEXT, "name": _TEXT, "value": _PRESENCE},
            "anyOf": [{"required": ["id"], "properties": {"id": _ID}},
                      {"required": ["name"], "properties": {"name": _ID}}]}
_CONCEPTS = {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS, "items": _CONCEPT}
_COORDINATE = {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, _NULL]}
_VERDICTS = [*(v.value for v in REGION_FEEDBACK_NUMBERS.values()), *REGION_FEEDBACK_NUMBERS]  # by name or number
_REGION = {"type": "object", "properties": {
    "id": _TEXT,
    "region_info": {"anyOf": [{"type": "object", "properties": {
        "bounding_box": {"anyOf": [{"type": "object", "properties": {
            name: _COORDINATE for name in COORDINATES}}, _NULL]},
        "feedback": {"anyOf": [{"enum": _VERDICTS}, _NULL]}}}, _NULL]},
    "data": {"anyOf": [{"type": "object", "properties": {"concepts": {"anyOf": [_CONCEPTS, _NULL]}}}, _NULL]}}}
_IMAGE = {"anyOf": [{"type": "object", "properties": {"url": {"anyOf": [{"type": "string"}, _NULL]},
                                                      "base64": {"anyOf": [{"type": "string"}, _NULL]}}}, _NULL]}


def feedback_schema(event_type: EventType, ref: str, *, model: bool) -> dict[str, Any]:
    """The body of one feedback endpoint: ``event_type`` (by name or number) and its ``ref`` id."""
    number = next(n for n, t in EVENT_TYPE_NUMBERS.items() if t is event_type)
    info = {"type": "object", "required": ["event_type", ref], "properties": {
        "event_type": {"enum": [event_type.value, number]}, "output_id": _TEXT, "search_id": _TEXT, ref: _ID,
        "end_user_id": _TEXT, "session_id": _TEXT}}
    if not model:  # a click names the clicked input; nothing else is read
        return {"type": "object", "required": ["input"], "properties": {"input": {
            "type": "object", "required": ["id", "feedback_info"], "properties": {"id": _ID, "feedback_info": info}}}}
    data = {"type": "object", "properties": {"image": _IMAGE}, "oneOf": [  # concepts or regions, not both
        {"required": ["concepts"], "properties": {"concepts": _CONCEPTS, "regions": {"maxItems": 0}}},
        {"required": ["regions"], "properties": {"regions": {"type": "array", "minItems": 1, "maxItems": MAX_ITEMS,
                                                             "items": _REGION}, "concepts": {"maxItems": 0}}}]}
    return {"type": "object", "required": ["input"], "properties": {"input": {
        "type": "object", "required": ["data", "feedback_info"],
        "properties": {"id": _TEXT, "data": data, "feedback_info": info}}}}


MODEL_SCHEMA = feedback_schema(EventType.ANNOTATION, "output_id", model=True)
SEARCH_SCHEMA = feedback_schema(EventType.SEARCH_CLICK, "search_id", model=False)
