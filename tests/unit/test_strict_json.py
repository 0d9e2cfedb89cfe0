"""The strict body parser: every JSON value an encoder produces from text and finite numbers parses back
unchanged; what would break a later response (lone surrogates, overflowing numbers, deep nesting) is refused."""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from visionloop.http.strict_json import MAX_DEPTH, OutOfRange, loads_strict

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=30,
)


@given(_VALUES, st.booleans())
def test_json_from_unicode_text_and_finite_numbers_round_trips(value: Any, ascii_only: bool) -> None:
    assert loads_strict(json.dumps(value, ensure_ascii=ascii_only).encode()) == value


@given(_TEXT, st.integers(0xD800, 0xDFFF), _TEXT, st.booleans())
def test_a_lone_surrogate_anywhere_is_refused(before: str, surrogate: int, after: str, as_key: bool) -> None:
    text = before + chr(surrogate) + after
    body = json.dumps({text: 1} if as_key else {"a": [{"b": text}]})  # ensure_ascii writes it as an escape
    with pytest.raises(json.JSONDecodeError, match="surrogate"):
        loads_strict(body.encode())


@pytest.mark.parametrize("number", ["1e999", "-1e400", "1.5e308000", "1" + "0" * 400, "-" + "9" * 5000,
                                    str(2**1024)])
def test_numbers_beyond_a_double_are_refused_naming_where(number: str) -> None:
    with pytest.raises(OutOfRange, match=r"^a\.b\[1\]: the number .* is beyond the range of a double"):
        loads_strict(f'{{"a": {{"b": [0, {number}]}}}}'.encode())


def test_the_largest_double_and_integers_within_it_are_numbers() -> None:
    largest = int(sys.float_info.max)
    assert loads_strict(f"[{largest}, {-largest}, 1.7976931348623157e308]") == [largest, -largest, sys.float_info.max]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000, 200_000])
def test_deep_nesting_is_refused_however_deep(depth: int) -> None:
    with pytest.raises(json.JSONDecodeError, match="deeper than"):
        loads_strict(b"[" * depth + b"]" * depth)


def test_nesting_up_to_the_limit_is_accepted() -> None:
    deepest = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert loads_strict(deepest) == json.loads(deepest)


def test_escaped_surrogate_pairs_and_a_utf8_bom_are_fine() -> None:
    assert loads_strict(b'\xef\xbb\xbf{"a": "\\ud83d\\ude00", "b": "\\\\ud800"}') == {"a": "😀", "b": "\\ud800"}


@pytest.mark.parametrize("body", ['{"a": 1}'.encode("utf-16"), b'{"a": "\xff"}'])
def test_bodies_that_are_not_utf8_are_refused(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError, match="not UTF-8"):
        loads_strict(body)
