"""What a hostile or careless tenant could do (issue 25): each test drives the HTTP API as one would."""

from __future__ import annotations

import time

from tests.feedback_support import status
from tests.helpers import Api
from visionloop.http.search_query import MAX_TERMS


def _concepts(n: int) -> list[dict]:
    return [{"name": f"c{i}", "value": True} for i in range(n)]


def test_a_query_is_capped_in_terms_with_a_clear_refusal(api: Api) -> None:
    api.add_image("i1")
    r = api.post("/searches", {"query": {"ands": [{"input": {"data": {"concepts": _concepts(MAX_TERMS)}}}]}})
    assert r.status_code == 200, r.text
    started = time.perf_counter()
    r = api.post("/searches", {"query": {"ands": [{"input": {"data": {"concepts": _concepts(40_000)}}}]}})
    assert time.perf_counter() - started < 5
    assert status(r)[:2] == (400, 11102) and status(r)[2].startswith("query.ands[0].input.data.concepts: "), r.text
    assert f"at most {MAX_TERMS} terms" in status(r)[2]
    # terms are counted across the whole query, however they are spread over ands
    half = {"input": {"data": {"concepts": _concepts(MAX_TERMS // 2 + 1)}}}
    r = api.post("/searches", {"query": {"ands": [half, half]}})
    assert status(r)[:2] == (400, 11102) and status(r)[2].startswith("query.ands[1]"), r.text
    r = api.post("/searches", {"query": {"ands": [{"input": {"data": {"metadata": {"k": i}}}}
                                                  for i in range(MAX_TERMS + 1)]}})
    assert status(r)[:2] == (400, 11102) and status(r)[2].startswith("query.ands: "), r.text
