"""The metadata filter of search: JSON containment, with JSON's idea of equal scalars."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from visionloop.services.search import contains

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=12,
)


@given(_JSON)
def test_every_value_contains_itself(value: Any) -> None:
    assert contains(value, value)


@given(st.dictionaries(st.text(max_size=3), _JSON, max_size=4), st.dictionaries(st.text(max_size=3), _JSON,
                                                                                 max_size=4))
def test_an_object_contains_any_part_of_itself(extra: dict[str, Any], part: dict[str, Any]) -> None:
    assert contains({**extra, **part}, part)


@pytest.mark.parametrize(("container", "wanted"), [
    ({"flag": 1}, {"flag": True}), ({"flag": 1.0}, {"flag": True}), ({"n": 0}, {"n": False}),
    ({"tags": [1]}, {"tags": [True]}), ({"flag": True}, {"flag": 1}), ({"n": None}, {"n": False}),
])
def test_booleans_are_not_numbers(container: dict[str, Any], wanted: dict[str, Any]) -> None:
    assert not contains(container, wanted)


def test_one_number_however_written() -> None:
    assert contains({"n": 1.0, "tags": ["a", 2]}, {"n": 1, "tags": [2.0]})
