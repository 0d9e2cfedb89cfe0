"""What a hostile or careless tenant could do (issue 25): each test drives the HTTP API as one would."""

from __future__ import annotations

import time

from tests.feedback_support import GENERAL, concept_body, feedback, predict, status
from tests.helpers import Api, png_bytes
from visionloop.core import VisionLoop
from visionloop.http.schemas import MAX_TERMS
from visionloop.services.training.data import concept_data


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


# -- 1. a user's final answer ------------------------------------------------------------------------
def test_a_users_final_answer_is_kept_and_only_a_retry_of_the_latest_is_dropped(api: Api, core: VisionLoop) -> None:
    out = predict(api, GENERAL, png_bytes((10, 200, 30)))
    for value in (True, False, True, True):  # the last is a retry of the one before it
        r = api.post(f"/models/{GENERAL}/feedback", concept_body(out["id"], [{"id": "helmet-x", "value": value}]))
        assert r.status_code == 200, r.text
    events = feedback(api, end_user_id="user-1")
    assert [e["data"]["concepts"][0]["value"] for e in events] == [1.0, 0.0, 1.0]
    model = core.models.get(api.app_id, GENERAL).model
    with core.db.session() as s:
        (label,) = [lab for lab in concept_data(s, api.app_id, model).labels if lab.item[1] == "helmet-x"]
    assert label.value is True
