"""Search feedback through HTTP: a click on a hit of a real search, recorded with the rank it was shown at."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.feedback_support import feedback, search_body, status
from tests.helpers import Api, b64, photo
from visionloop.core import VisionLoop
from visionloop.store.tables import FeedbackEvent

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """These tests hold feedback to its output or search (VISIONLOOP_FEEDBACK_REQUIRE_LINK=1, the
    refusals as they were); tests/api/test_feedback_unlinked.py covers the default."""
    return {"fetch_allow_hosts": "127.0.0.1", "feedback_require_link": True}


@pytest.fixture
def shown(api: Api) -> dict:
    """A real search over real photos: its id and the ids of its hits in the order shown."""
    r = api.post("/inputs", {"inputs": [{"id": name, "data": {"image": {"base64": b64(photo(name))},
                                                              "concepts": [{"id": "photo"}]}} for name in PHOTOS]})
    assert r.json()["status"]["code"] == 10000, r.text
    r = api.post("/searches", {"query": {"ands": [{"output": {"input": {"id": "chelsea"}}}]},
                               "pagination": {"page": 1, "per_page": 20}})
    assert r.status_code == 200, r.text
    hits = [h["input"]["id"] for h in r.json()["hits"]]
    assert hits[0] == "chelsea" and len(hits) == len(PHOTOS)
    return {"id": r.json()["id"], "hits": hits}


def click(api: Api, body: Any) -> Any:
    return api.post("/searches/feedback", body)


def ok(r: Any) -> None:
    assert r.status_code == 200 and r.json() == {"status": {"code": 10000, "description": "Ok"}}, r.text


def stored(core: VisionLoop) -> int:
    with core.db.session() as s:
        return len(list(s.scalars(select(FeedbackEvent.seq))))


def test_click_records_the_rank_it_was_shown_at(api: Api, shown: dict) -> None:
    third = shown["hits"][2]
    ok(click(api, search_body(shown["id"], third)))
    ok(click(api, search_body(shown["id"], shown["hits"][0], event_type=1, end_user_id="user-2", session_id=None)))
    first, second = feedback(api, event_type="search_click")
    assert (first["search_id"], first["input_id"], first["rank"]) == (shown["id"], third, 3)
    assert first["event_type"] == "search_click" and first["model_id"] is None and first["output_id"] is None
    assert first["data"]["kind"] == "search_click" and first["data"]["rank"] == 3 and first["data"]["score"] <= 1
    assert (first["end_user_id"], first["session_id"]) == ("user-1", "session-1")
    assert (second["rank"], second["end_user_id"], second["session_id"]) == (1, "user-2", None)
    assert [e["input_id"] for e in feedback(api, search_id=shown["id"], end_user_id="user-2")] == ["chelsea"]
    assert feedback(api, event_type="annotation") == [] and len(feedback(api, event_type="1")) == 2


def test_a_later_page_keeps_absolute_ranks(api: Api, shown: dict) -> None:
    r = api.post("/searches", {"query": {"ands": [{"output": {"input": {"id": "chelsea"}}}]},
                               "pagination": {"page": 2, "per_page": 2}})
    page2 = r.json()
    ok(click(api, search_body(page2["id"], page2["hits"][0]["input"]["id"])))
    assert feedback(api)[0]["rank"] == 3


def test_app_scoped_path(api: Api, shown: dict) -> None:
    r = api.client.post("/v2/users/me/apps/app-a/searches/feedback", json=search_body(shown["id"], "rocket"),
                        headers=api.headers())
    ok(r)


def test_retried_clicks_are_stored_once(api: Api, core: VisionLoop, shown: dict) -> None:
    for _ in range(3):
        ok(click(api, search_body(shown["id"], "coffee")))
    ok(click(api, search_body(shown["id"], "coffee", session_id="another-session")))
    ok(click(api, search_body(shown["id"], "rocket")))
    assert stored(core) == 3


def test_unknown_search_and_other_apps_search(api: Api, other_api: Api, core: VisionLoop, shown: dict) -> None:
    r = click(api, search_body("f" * 32, "chelsea"))
    assert status(r) == (404, 11101, f"input.feedback_info.search_id: search {'f' * 32!r} does not exist in this "
                                     "app (use the id of a search response)")
    assert r.json()["status"]["description"] == "Search does not exist"
    r = click(other_api, search_body(shown["id"], "chelsea"))
    assert status(r)[:2] == (404, 11101)
    assert stored(core) == 0


def test_clicked_input_must_be_among_the_hits(api: Api, core: VisionLoop, shown: dict) -> None:
    api.add_image("not-shown")  # exists in the app, but was not a hit of that search
    found = api.post("/searches", {"query": {"ands": [{"input": {"data": {"concepts": [{"id": "photo"}]}}}]}}).json()
    assert "not-shown" not in [h["input"]["id"] for h in found["hits"]]
    for input_id in ("not-shown", "never-existed"):
        r = click(api, search_body(found["id"], input_id))
        assert status(r) == (404, 30102, f"input.id: input {input_id!r} is not among the hits of search "
                                         f"{found['id']!r}, so it cannot have been clicked"), r.text
        assert r.json()["status"]["description"] == "Input is not a hit of this search"
    assert stored(core) == 0


@pytest.mark.parametrize("change,field,reason", [
    ({"event_type": None}, "input.feedback_info.event_type", "is required; this endpoint takes 'search_click'"),
    ({"event_type": "annotation"}, "input.feedback_info.event_type", "does not fit this endpoint"),
    ({"event_type": 2}, "input.feedback_info.event_type", "does not fit this endpoint"),
    ({"event_type": "view"}, "input.feedback_info.event_type", "unknown value 'view'"),
    ({"search_id": None}, "input.feedback_info.search_id", "is required (the id of the search)"),
    ({"search_id": ["x"]}, "input.feedback_info.search_id", "must be the id of the search"),
    ({"session_id": 5}, "input.feedback_info.session_id", "must be a string"),
    ({"input_id": None}, "input.id", "is required (the id of the clicked input)"),
    ({"input_id": 3}, "input.id", "must be the id of the clicked input"),
    ({"feedback_info": None}, "input.feedback_info", "is required"),
])
def test_invalid_search_feedback(api: Api, core: VisionLoop, shown: dict, change: dict, field: str,
                                 reason: str) -> None:
    body = search_body(shown["id"], "chelsea")
    for key, value in change.items():
        if key == "input_id":
            target, key = body["input"], "id"
        elif key == "feedback_info":
            target = body["input"]
        else:
            target = body["input"]["feedback_info"]
        if value is None:
            target.pop(key)
        else:
            target[key] = value
    r = click(api, body)
    assert r.status_code == 400 and r.json()["status"]["code"] == 11102, r.text
    details = r.json()["status"]["details"]
    assert details.startswith(field + ":") and reason in details, details
    assert stored(core) == 0


def test_malformed_bodies(api: Api, core: VisionLoop) -> None:
    for content, code in ((b'{"input": {"id": "x",}}', 11100), (b"[]", 11100), (b'{"input": null}', 11102)):
        r = api.client.post("/v2/searches/feedback", content=content,
                            headers={**api.headers(), "Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["status"]["code"] == code, r.text
    assert stored(core) == 0


def test_search_feedback_is_not_metered(api: Api, core: VisionLoop, shown: dict) -> None:
    before = core.usage.by_op("app-a")
    ok(click(api, search_body(shown["id"], "rocket")))
    assert core.usage.by_op("app-a") == before
