"""The feedback wire parsers: total (parse or ApiError, nothing else), lenient where clients differ."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from visionloop import errors
from visionloop.inference.predictions import Box
from visionloop.learning.vocabulary import RegionFeedback
from visionloop.services.feedback.parse import (
    parse_box,
    parse_model_feedback,
    parse_search_feedback,
)
from visionloop.services.feedback.regions import Predicted, match_regions

ACCURATE, MISPLACED = RegionFeedback.ACCURATE, RegionFeedback.MISPLACED
NOT_DETECTED, FALSE_POSITIVE = RegionFeedback.NOT_DETECTED, RegionFeedback.FALSE_POSITIVE

INFO = {"event_type": "annotation", "output_id": "out-1", "end_user_id": "u", "session_id": "s"}
BOX = {"top_row": 0.3, "left_col": 0.2, "bottom_row": 0.7, "right_col": 0.8}


def concepts(*items: dict) -> dict:
    return {"input": {"id": "in-1", "data": {"concepts": list(items)}, "feedback_info": dict(INFO)}}


def regions(*items: dict) -> dict:
    return {"input": {"id": "in-1", "data": {"regions": list(items)}, "feedback_info": dict(INFO)}}


def refused(body: Any, parse=parse_model_feedback) -> errors.ApiError:  # type: ignore[no-untyped-def]
    with pytest.raises(errors.ApiError) as exc:
        parse(body)
    return exc.value


# -- the clients' quirks ----------------------------------------------------------------------------
@pytest.mark.parametrize("value,present", [(True, True), (False, False), (1.0, True), (0.0, False), (1, True),
                                           (0, False), (None, True)])
def test_concept_values_of_every_client(value: Any, present: bool) -> None:
    item = {"id": "dog"} if value is None else {"id": "dog", "value": value}
    fb = parse_model_feedback(concepts(item))
    assert fb.kind == "concepts" and fb.concepts[0].present is present and fb.concepts[0].ref == "dog"


def test_python_client_region_quirks() -> None:
    """clarifai 2.6.2 omits feedback 'accurate' and zero coordinates (protobuf defaults)."""
    fb = parse_model_feedback(regions(
        {"region_info": {"bounding_box": {"left_col": 0.1, "bottom_row": 0.1, "right_col": 0.2}},
         "data": {"concepts": [{"id": "ai_TG4GHlnf", "value": 1.0}]}},
        {"region_info": {"bounding_box": BOX, "feedback": "false_positive"},
         "data": {"concepts": [{"id": "ai_TG4GHlnf", "value": 0.0}]}}))
    first, second = fb.regions
    assert first.feedback == ACCURATE and first.box == Box(0.0, 0.1, 0.1, 0.2)
    assert second.feedback == FALSE_POSITIVE and second.concepts[0].present is False


@pytest.mark.parametrize("raw,name", [("accurate", ACCURATE), (0, ACCURATE), ("MISPLACED", MISPLACED),
                                      (1, MISPLACED), ("not_detected", NOT_DETECTED), (2, NOT_DETECTED),
                                      ("false_positive", FALSE_POSITIVE), (3, FALSE_POSITIVE), (None, ACCURATE)])
def test_region_feedback_by_name_or_number(raw: Any, name: str) -> None:
    r = {"region_info": {"bounding_box": BOX, "feedback": raw}, "data": {"concepts": [{"id": "logo"}]}}
    assert parse_model_feedback(regions(r)).regions[0].feedback == name


@pytest.mark.parametrize("raw", ["annotation", 2, "ANNOTATION", "2"])
def test_event_type_by_name_or_number(raw: Any) -> None:
    body = concepts({"id": "dog"})
    body["input"]["feedback_info"]["event_type"] = raw
    assert parse_model_feedback(body).info.event_type == "annotation"


def test_nulls_and_unknown_fields_are_accepted() -> None:
    body = {"user_app_id": {"user_id": "me", "app_id": "a"}, "input": {
        "id": None, "status": {"code": 30000}, "created_at": None,
        "data": {"image": None, "concepts": [{"id": "dog", "name": None, "value": None, "app_id": None,
                                              "language": None}], "regions": None, "metadata": {"x": 1}},
        "feedback_info": {**INFO, "end_user_id": None, "session_id": None, "search_id": None, "extra": [1]}}}
    fb = parse_model_feedback(body)
    assert fb.input_id is None and fb.image is None and fb.info.end_user_id is None
    assert [c.ref for c in fb.concepts] == ["dog"]


def test_search_feedback() -> None:
    fb = parse_search_feedback({"input": {"id": "in-7", "feedback_info": {
        "event_type": 1, "search_id": "s-1", "end_user_id": "u", "session_id": "s"}}})
    assert (fb.input_id, fb.info.search_id, fb.info.event_type) == ("in-7", "s-1", "search_click")


# -- precise refusals -------------------------------------------------------------------------------
def _set(body: dict, path: str, value: Any) -> dict:
    body = copy.deepcopy(body)
    node: Any = body
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if p.isdigit() else node[p]
    last = parts[-1]
    if value is _DELETE:
        del node[last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return body


_DELETE = object()
REGION = {"region_info": {"bounding_box": dict(BOX), "feedback": "accurate"}, "data": {"concepts": [{"id": "logo"}]}}


@pytest.mark.parametrize("base,path,value,field,reason", [
    (concepts({"id": "dog"}), "input", _DELETE, "input", "required"),
    (concepts({"id": "dog"}), "input", [], "input", "must be an object"),
    (concepts({"id": "dog"}), "input.data", _DELETE, "input.data", "required"),
    (concepts({"id": "dog"}), "input.data.concepts", [], "input.data.concepts", "empty"),
    (concepts({"id": "dog"}), "input.data.concepts", {"id": "dog"}, "input.data.concepts", "must be a list"),
    (concepts({"id": "dog"}), "input.data.concepts.0", "dog", "input.data.concepts[0]", "must be an object"),
    (concepts({"id": "dog"}), "input.data.concepts.0.id", 7, "input.data.concepts[0].id", "must be a string"),
    (concepts({"id": "dog"}), "input.data.concepts.0.id", None, "input.data.concepts[0]", "an id or a name"),
    (concepts({"id": "dog"}), "input.data.concepts.0.value", 0.5, "input.data.concepts[0].value", "true/false"),
    (concepts({"id": "dog"}), "input.data.concepts.0.value", "yes", "input.data.concepts[0].value", "true/false"),
    (concepts({"id": "dog"}), "input.data.concepts.0.value", 2, "input.data.concepts[0].value", "true/false"),
    (concepts({"id": "dog"}, {"id": "dog", "value": False}), "input.id", "in-1", "input.data.concepts[1]",
     "opposite value"),
    (concepts({"id": "dog"}), "input.id", 12, "input.id", "must be a string"),
    (concepts({"id": "dog"}), "input.data.image", "http://x/y.jpg", "input.data.image", "must be an object"),
    (concepts({"id": "dog"}), "input.data.image", {"url": 5}, "input.data.image.url", "must be a string"),
    (concepts({"id": "dog"}), "input.feedback_info", _DELETE, "input.feedback_info", "required"),
    (concepts({"id": "dog"}), "input.feedback_info.event_type", _DELETE, "input.feedback_info.event_type",
     "is required"),
    (concepts({"id": "dog"}), "input.feedback_info.event_type", 0, "input.feedback_info.event_type", "is required"),
    (concepts({"id": "dog"}), "input.feedback_info.event_type", "search_click", "input.feedback_info.event_type",
     "does not fit"),
    (concepts({"id": "dog"}), "input.feedback_info.event_type", "click", "input.feedback_info.event_type",
     "unknown value"),
    (concepts({"id": "dog"}), "input.feedback_info.event_type", 9, "input.feedback_info.event_type", "unknown value"),
    (concepts({"id": "dog"}), "input.feedback_info.event_type", True, "input.feedback_info.event_type",
     "must be one of"),
    (concepts({"id": "dog"}), "input.feedback_info.event_type", False, "input.feedback_info.event_type",
     "(by name or integer), got False"),
    (concepts({"id": "dog"}), "input.feedback_info.event_type", 2.0, "input.feedback_info.event_type",
     "(by name or integer), got 2.0"),
    (concepts({"id": "dog"}), "input.feedback_info.output_id", _DELETE, "input.feedback_info.output_id",
     "is required"),
    (concepts({"id": "dog"}), "input.feedback_info.output_id", 42, "input.feedback_info.output_id", "must be"),
    (concepts({"id": "dog"}), "input.feedback_info.end_user_id", "u" * 300, "input.feedback_info.end_user_id",
     "at most 255"),
    (concepts({"id": "dog"}), "input.feedback_info.session_id", ["s"], "input.feedback_info.session_id",
     "must be a string"),
    (regions(REGION), "input.data.regions", [], "input.data.regions", "empty"),
    (regions(REGION), "input.data.regions.0.region_info.bounding_box.top_row", 1.5,
     "input.data.regions[0].region_info.bounding_box.top_row", "within [0, 1]"),
    (regions(REGION), "input.data.regions.0.region_info.bounding_box.left_col", -0.1,
     "input.data.regions[0].region_info.bounding_box.left_col", "within [0, 1]"),
    (regions(REGION), "input.data.regions.0.region_info.bounding_box.right_col", "0.9",
     "input.data.regions[0].region_info.bounding_box.right_col", "must be a number"),
    (regions(REGION), "input.data.regions.0.region_info.bounding_box.bottom_row", 0.1,
     "input.data.regions[0].region_info.bounding_box", "less than bottom_row"),
    (regions(REGION), "input.data.regions.0.region_info.bounding_box.right_col", 0.2,
     "input.data.regions[0].region_info.bounding_box", "less than right_col"),
    (regions(REGION), "input.data.regions.0.region_info.bounding_box", {}, "input.data.regions[0].region_info."
     "bounding_box", "less than"),
    (regions(REGION), "input.data.regions.0.region_info.feedback", "wrong", "input.data.regions[0].region_info."
     "feedback", "unknown value 'wrong'"),
    (regions(REGION), "input.data.regions.0.region_info.feedback", 4, "input.data.regions[0].region_info.feedback",
     "unknown value 4"),
    (regions(REGION), "input.data.regions.0.region_info.bounding_box", _DELETE,
     "input.data.regions[0].region_info.bounding_box", "or the id of the predicted region"),
    (regions(REGION), "input.data.regions.0.data.face", [], "input.data.regions[0].data.face", "must be an object"),
    (regions(REGION), "input.data.regions.0.data.face", {"identity": {"concepts": [{"value": 1.0}]}},
     "input.data.regions[0].data.face.identity.concepts[0]", "an id or a name"),
    (regions(REGION), "input.data.regions.0.id", 3, "input.data.regions[0].id", "must be a string"),
    (regions(REGION), "input.data.regions.0", None, "input.data.regions[0]", "required"),
])
def test_refusals_name_the_field_and_reason(base: dict, path: str, value: Any, field: str, reason: str) -> None:
    err = refused(_set(base, path, value))
    assert err.code in (11100, 11102), err
    assert err.details.startswith(field + ":"), err.details
    assert reason in err.details, err.details


@pytest.mark.parametrize("feedback,change,field,reason", [
    ("misplaced", {"box": None, "id": "r1"}, "region_info.bounding_box", "the corrected box"),
    ("not_detected", {"box": None}, "region_info.bounding_box", "the box the model missed"),
    ("not_detected", {"id": "r1"}, "id", "cannot name a predicted region"),
])
def test_region_rules(feedback: str, change: dict, field: str, reason: str) -> None:
    r: dict[str, Any] = {"region_info": {"bounding_box": dict(BOX), "feedback": feedback},
                         "data": {"concepts": [{"id": "logo"}]}}
    if "box" in change:
        del r["region_info"]["bounding_box"]
    if "id" in change:
        r["id"] = change["id"]
    err = refused(regions(r))
    assert err.details.startswith(f"input.data.regions[0].{field}:") and reason in err.details, err.details


def test_clarifais_own_bodies_concepts_with_regions_face_attributes_and_bare_regions() -> None:
    """What Clarifai's client test suite sends, and Clarifai accepted."""
    face = {"identity": {"concepts": [{"id": "xx", "value": 1.0}, {"id": "x2", "value": 0.0}]},
            "age_appearance": {"concepts": [{"id": "1", "value": 1.0}]}}
    body = {"input": {"id": "xyz", "data": {
        "concepts": [{"id": "matid2", "value": 1.0}, {"id": "lambo", "value": 0.0}],
        "regions": [{"region_info": {"bounding_box": dict(BOX)}, "data": {"face": face}},
                    {"region_info": {"bounding_box": {"top_row": 0.1, "right_col": 0.5, "bottom_row": 0.5}}}]},
        "feedback_info": {"event_type": "annotation", "output_id": "oooooooid"}}}
    fb = parse_model_feedback(body)
    assert [(c.ref, c.present) for c in fb.concepts] == [("matid2", True), ("lambo", False)]
    with_face, bare = fb.regions
    assert with_face.feedback == bare.feedback == "accurate" and not with_face.concepts and not bare.concepts
    assert [(a, [(c.ref, c.present) for c in cs]) for a, cs in with_face.face] == [
        ("identity", [("xx", True), ("x2", False)]), ("age_appearance", [("1", True)])]
    assert bare.face == ()


def test_false_positive_may_omit_concepts_and_id_may_replace_box() -> None:
    fb = parse_model_feedback(regions({"id": "r1", "region_info": {"feedback": "false_positive"}}))
    assert fb.regions[0].box is None and fb.regions[0].region_id == "r1" and fb.regions[0].concepts == ()


def test_body_must_be_an_object() -> None:
    for body in ([], "text", 3, None, True):
        assert refused(body).code == 11100


def test_search_refusals() -> None:
    good = {"input": {"id": "in-7", "feedback_info": {"event_type": "search_click", "search_id": "s"}}}
    assert "input.id" in refused(_set(good, "input.id", _DELETE), parse_search_feedback).details
    err = refused(_set(good, "input.feedback_info.event_type", "annotation"), parse_search_feedback)
    assert "does not fit" in err.details and "/v2/models/{model_id}/feedback" in err.details
    assert "search_id" in refused(_set(good, "input.feedback_info.search_id", ""), parse_search_feedback).details


def test_not_a_number_is_refused() -> None:
    """JSON parsers accept NaN/Infinity literals; a box made of them is refused."""
    for bad in (math.nan, math.inf, -math.inf):
        err = refused(regions({"region_info": {"bounding_box": {**BOX, "top_row": bad}},
                               "data": {"concepts": [{"id": "x"}]}}))
        assert "top_row" in err.details


# -- properties -------------------------------------------------------------------------------------
json_scalars = st.none() | st.booleans() | st.integers(-10, 10) | st.floats(allow_nan=True, allow_infinity=True) \
    | st.text(max_size=5)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=10)
coordinate = st.none() | st.floats(allow_nan=True, allow_infinity=True) | st.integers(-2, 2) | st.booleans() \
    | st.text(max_size=3)
boxes = st.fixed_dictionaries({}, optional={c: coordinate for c in ("top_row", "left_col", "bottom_row", "right_col")})
concept_items = st.fixed_dictionaries({}, optional={"id": st.none() | st.text(max_size=4) | st.integers(),
                                                    "name": st.none() | st.text(max_size=4),
                                                    "value": json_scalars, "extra": json_values})
region_items = st.fixed_dictionaries({}, optional={
    "id": st.none() | st.text(max_size=3) | st.integers(),
    "region_info": st.none() | st.fixed_dictionaries({}, optional={
        "bounding_box": st.none() | boxes | json_values,
        "feedback": st.none() | st.sampled_from(["accurate", "misplaced", "not_detected", "false_positive", "x"])
        | st.integers(-1, 5) | json_scalars}),
    "data": st.none() | st.fixed_dictionaries({}, optional={"concepts": st.lists(concept_items, max_size=3)
                                                            | json_values})})
infos = st.fixed_dictionaries({}, optional={
    "event_type": st.sampled_from(["annotation", "search_click", 0, 1, 2, 3, None, "x", True]),
    "output_id": st.none() | st.text(max_size=4) | st.integers(),
    "search_id": st.none() | st.text(max_size=4) | st.integers(),
    "end_user_id": st.none() | st.text(max_size=4) | json_values,
    "session_id": st.none() | st.text(max_size=4)})
bodies = st.fixed_dictionaries({}, optional={"input": st.fixed_dictionaries({}, optional={
    "id": st.none() | st.text(max_size=4) | st.integers(),
    "data": st.none() | json_values | st.fixed_dictionaries({}, optional={
        "image": st.none() | json_values | st.fixed_dictionaries({}, optional={"url": json_scalars,
                                                                               "base64": json_scalars}),
        "concepts": st.none() | st.lists(concept_items, max_size=4) | json_values,
        "regions": st.none() | st.lists(region_items, max_size=3) | json_values}),
    "feedback_info": st.none() | infos | json_values}), "user_app_id": json_values}) | json_values


# Mostly well-formed bodies with a few wrong values each, so that both outcomes are exercised.
ids = st.text(alphabet="abcxyz019_-", min_size=1, max_size=6)
fractions = st.floats(0, 1) | st.sampled_from([0, 1, None, 1.5, -0.1, math.nan, "0.5", True])
valid_values = [True, False, 1.0, 0.0, 1, 0, None]


@st.composite
def sorted_boxes(draw: Any) -> dict:
    t, b = sorted(draw(st.lists(st.floats(0, 1), min_size=2, max_size=2, unique=True)))
    left, r = sorted(draw(st.lists(st.floats(0, 1), min_size=2, max_size=2, unique=True)))
    box = {"top_row": t, "left_col": left, "bottom_row": b, "right_col": r}
    return {k: v for k, v in box.items() if v != 0 or draw(st.booleans())}  # protobuf omits zeros


good_concepts = st.lists(st.fixed_dictionaries(
    {"id": st.one_of(ids, ids, ids, st.sampled_from([None, 3]))},
    optional={"name": st.none() | ids, "value": st.sampled_from(valid_values * 3 + [0.5, "yes"])}),
    min_size=1, max_size=4)
good_regions = st.lists(st.fixed_dictionaries(
    {"region_info": st.fixed_dictionaries({}, optional={
        "bounding_box": st.one_of(sorted_boxes(), sorted_boxes(), sorted_boxes(), st.fixed_dictionaries(
            {}, optional={c: fractions for c in ("top_row", "left_col", "bottom_row", "right_col")})),
        "feedback": st.sampled_from(["accurate", "misplaced", "not_detected", "false_positive", 0, 1, 2, 3, None,
                                     "bogus"])}),
     "data": st.fixed_dictionaries({"concepts": st.one_of(good_concepts, good_concepts, st.just([]))})},
    optional={"id": st.none() | ids}), min_size=1, max_size=3)
good_data = st.one_of(st.fixed_dictionaries({"concepts": good_concepts}),
                      st.fixed_dictionaries({"regions": good_regions}),
                      st.fixed_dictionaries({}, optional={"concepts": good_concepts, "regions": good_regions,
                                                          "image": st.fixed_dictionaries({}, optional={"url": ids})}))
near_valid = st.fixed_dictionaries({"input": st.fixed_dictionaries(
    {"data": good_data,
     "feedback_info": st.fixed_dictionaries(
         {"event_type": st.sampled_from(["annotation", 2, "ANNOTATION", "search_click", 1, 0]),
          "output_id": st.one_of(ids, ids, ids, st.none()), "search_id": st.one_of(ids, ids, ids, st.just(7))},
         optional={"end_user_id": ids, "session_id": ids})},
    optional={"id": ids})})


def _parses(body: Any) -> bool:
    try:
        parse_model_feedback(body)
    except errors.ApiError:
        return False
    return True


def test_the_near_valid_strategy_reaches_both_outcomes() -> None:
    from hypothesis import find

    assert find(near_valid, _parses, settings=settings(database=None))
    assert find(near_valid, lambda b: not _parses(b), settings=settings(database=None))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies | near_valid)
def test_any_body_parses_or_is_an_api_error(body: Any) -> None:
    for parse in (parse_model_feedback, parse_search_feedback):
        try:
            fb = parse(body)
        except errors.ApiError as exc:
            assert exc.code in (11100, 11102) and exc.details
            continue
        if parse is parse_model_feedback:
            assert fb.concepts or fb.regions
            for r in fb.regions:
                assert r.box is not None or r.region_id is not None
                if r.box is not None:
                    assert 0 <= r.box.top < r.box.bottom <= 1 and 0 <= r.box.left < r.box.right <= 1


@settings(max_examples=300, deadline=None)
@given(boxes)
def test_boxes_outside_the_unit_square_are_always_refused(raw: dict) -> None:
    try:
        box = parse_box(raw, "box")
    except errors.ApiError as exc:
        assert exc.code == 11102 and exc.details.startswith("box")
        return
    assert box is not None
    values = [raw.get(c) for c in ("top_row", "left_col", "bottom_row", "right_col")]
    for v in values:  # everything accepted was a real number in [0, 1] (or missing, meaning 0)
        assert v is None or (not isinstance(v, bool) and isinstance(v, (int, float)) and 0 <= v <= 1)
    assert box.top < box.bottom and box.left < box.right


@given(st.floats(), st.floats(), st.floats(), st.floats())
def test_any_coordinate_outside_0_1_is_refused(t: float, l: float, b: float, r: float) -> None:  # noqa: E741
    outside = any(not (0 <= x <= 1) for x in (t, l, b, r))  # NaN is outside too
    raw = {"top_row": t, "left_col": l, "bottom_row": b, "right_col": r}
    if outside:
        with pytest.raises(errors.InvalidRequest):
            parse_box(raw, "box")


# -- region matching --------------------------------------------------------------------------------
def _regions(*items: dict) -> tuple:
    return parse_model_feedback(regions(*items)).regions


def test_matching_by_id_then_iou() -> None:
    predicted = [Predicted("a", Box(0.1, 0.1, 0.3, 0.3)), Predicted("b", Box(0.5, 0.5, 0.9, 0.9))]
    fb = _regions(
        {"id": "b", "region_info": {"feedback": "false_positive"}},
        {"region_info": {"bounding_box": {"top_row": 0.12, "left_col": 0.1, "bottom_row": 0.3, "right_col": 0.3}},
         "data": {"concepts": [{"id": "face"}]}},
        {"region_info": {"bounding_box": {"top_row": 0.6, "left_col": 0.0, "bottom_row": 0.7, "right_col": 0.1},
                         "feedback": "not_detected"}, "data": {"concepts": [{"id": "face"}]}})
    m = match_regions(fb, predicted, "out")
    assert (m[0].region_id, m[0].by, m[0].box) == ("b", "id", Box(0.5, 0.5, 0.9, 0.9))
    assert (m[1].region_id, m[1].by) == ("a", "iou") and m[1].iou == pytest.approx(0.9)
    assert (m[2].region_id, m[2].by, m[2].iou) == (None, None, None)


def test_misplaced_matches_any_overlap_accurate_needs_half() -> None:
    predicted = [Predicted("a", Box(0.0, 0.0, 0.4, 0.4))]
    shifted = {"top_row": 0.3, "left_col": 0.3, "bottom_row": 0.7, "right_col": 0.7}
    for feedback, tied in (("misplaced", "a"), ("accurate", None)):
        fb = _regions({"region_info": {"bounding_box": shifted, "feedback": feedback},
                       "data": {"concepts": [{"id": "face"}]}})
        assert match_regions(fb, predicted, "out")[0].region_id == tied


def test_unknown_or_repeated_region_id_is_refused() -> None:
    predicted = [Predicted("a", Box(0.0, 0.0, 0.4, 0.4))]
    with pytest.raises(errors.InvalidRequest, match=r"regions\[0\].id: output 'out' has no region 'zz'"):
        match_regions(_regions({"id": "zz", "region_info": {}, "data": {"concepts": [{"id": "f"}]}}), predicted, "out")
    twice = _regions({"id": "a", "region_info": {}, "data": {"concepts": [{"id": "f"}]}},
                     {"id": "a", "region_info": {}, "data": {"concepts": [{"id": "g"}]}})
    with pytest.raises(errors.InvalidRequest, match=r"regions\[1\].id: region 'a' already has feedback in"):
        match_regions(twice, predicted, "out")


def test_a_region_repeated_word_for_word_is_one_region_and_two_verdicts_on_one_box_are_refused() -> None:
    box = {"top_row": 0.1, "left_col": 0.1, "bottom_row": 0.5, "right_col": 0.5}
    missed = {"region_info": {"bounding_box": box, "feedback": "not_detected"}, "data": {"concepts": [{"id": "f"}]}}
    assert len(_regions(*[missed] * 1000)) == 1
    by_id = {"id": "a", "region_info": {}, "data": {"concepts": [{"id": "f", "value": True}]}}
    assert len(_regions(by_id, {**by_id, "data": {"concepts": [{"id": "f", "value": 1.0}]}})) == 1
    other = {**missed, "data": {"concepts": [{"id": "g"}]}}  # the same box showing another concept: kept
    assert len(_regions(missed, other)) == 2
    with pytest.raises(errors.InvalidRequest, match=r"regions\[1\]: the same region as .*regions\[0\] cannot "
                                                    r"be both not_detected and false_positive"):
        _regions(missed, {**missed, "region_info": {"bounding_box": box, "feedback": "false_positive"}})


def test_one_to_one_greedy() -> None:
    predicted = [Predicted("a", Box(0.0, 0.0, 0.5, 0.5))]
    same = {"top_row": 0.0, "left_col": 0.0, "bottom_row": 0.5, "right_col": 0.5}
    near = {"top_row": 0.0, "left_col": 0.0, "bottom_row": 0.45, "right_col": 0.5}
    fb = _regions({"region_info": {"bounding_box": near}, "data": {"concepts": [{"id": "f"}]}},
                  {"region_info": {"bounding_box": same}, "data": {"concepts": [{"id": "f"}]}})
    m = match_regions(fb, predicted, "out")
    assert [x.region_id for x in m] == [None, "a"]  # the best IoU wins the predicted region
