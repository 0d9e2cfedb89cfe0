"""The click memory through HTTP: a click re-ranks the next identical search at once, no training run.

A small corpus of photo variants of four scenes; queries are other variants, sent as images. What
users click for a query rises the next time it (or a near-duplicate of its image) is searched,
each end user counting once, old clicks less, erased users' clicks not at all.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, update

from tests.helpers import Api, b64, scene, scene_variants
from visionloop.core import VisionLoop
from visionloop.services.search import EXPLORE_POOL, MEMORY_TOP
from visionloop.store.tables import FeedbackEvent, SearchHit

SCENES = ("chelsea", "coffee", "rocket", "astronaut")
PER_SCENE = 6


@pytest.fixture
def corpus(api: Api) -> list[str]:
    items = [{"id": f"{name}-{k}", "data": {"image": {"base64": b64(png)}, "metadata": {"scene": name},
                                            "concepts": [{"id": "photo"}]}}
             for n, name in enumerate(SCENES)
             for k, png in enumerate(scene_variants(scene(name), PER_SCENE, seed=n, quality=85))]
    r = api.post("/inputs", {"inputs": items})
    assert r.status_code == 200, r.text
    return [it["id"] for it in items]


QUERY = scene_variants(scene("chelsea"), 1, seed=99, quality=90)[0]


def by_image(png: bytes = QUERY) -> dict[str, Any]:
    return {"output": {"input": {"data": {"image": {"base64": b64(png)}}}}}


def search(api: Api, *terms: dict[str, Any], page: int = 1, per_page: int = 10) -> tuple[str, list[str], list[float]]:
    r = api.post("/searches", {"query": {"ands": list(terms or [by_image()])},
                               "pagination": {"page": page, "per_page": per_page}})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    return r.json()["id"], [h["input"]["id"] for h in hits], [h["score"] for h in hits]


def click(api: Api, search_id: str, hit: str, user: str = "u1") -> None:
    r = api.post("/searches/feedback", {"input": {"id": hit, "feedback_info": {
        "event_type": "search_click", "search_id": search_id, "end_user_id": user}}})
    assert r.status_code == 200, r.text


def test_a_click_lifts_the_hit_in_the_next_identical_search(api: Api, corpus: list[str]) -> None:
    sid, before, _ = search(api)
    ninth = before[8]
    click(api, sid, ninth)
    _, after, _ = search(api)
    assert after.index(ninth) < 3, after
    # one click moves one hit, not the whole page: the top of it stays, the two hits passed over
    # just above the click may give way to hits like the clicked one
    assert set(before[:6]) <= set(after) and len(set(after) & set(before)) >= len(before) - 2


def test_a_hit_from_below_the_page_enters_it_and_pages_stay_consistent(api: Api, corpus: list[str]) -> None:
    _, first, _ = search(api)
    sid, second, _ = search(api, page=2)
    below = second[4]  # shown at rank 15
    for user in ("u1", "u2"):
        click(api, sid, below, user)
    _, first_after, _ = search(api)
    assert below in first_after and below not in first
    _, second_after, _ = search(api, page=2)
    _, whole, _ = search(api, per_page=20)
    assert first_after + second_after == whole and len(set(whole)) == 20


def test_search_metrics_name_the_ranking_with_the_memory(api: Api, corpus: list[str]) -> None:
    sid, before, _ = search(api)
    click(api, sid, before[8])
    metrics = api.get("/searches/metrics").json()["search_metrics"]
    assert list(metrics["by_ranking"]) == ["bb186755eda04f9cbb6fe32e816be104+memory"]
    assert metrics["by_ranking"]["bb186755eda04f9cbb6fe32e816be104+memory"]["visual"]["n_clicks"] == 1


def test_a_near_duplicate_image_is_the_same_query(api: Api, corpus: list[str]) -> None:
    sid, before, _ = search(api)
    click(api, sid, before[8])
    recompressed = scene_variants(scene("chelsea"), 1, seed=99, quality=70)[0]
    assert recompressed != QUERY
    _, again, _ = search(api, by_image(recompressed))
    assert again.index(before[8]) < 3, again


def test_filters_are_part_of_the_query(api: Api, corpus: list[str]) -> None:
    concept = {"input": {"data": {"concepts": [{"id": "photo"}]}}}
    sid, before, _ = search(api, concept)
    last = before[-1]
    click(api, sid, last)
    assert search(api, concept)[1][0] == last  # the same concept query remembers
    filtered = {"input": {"data": {"metadata": {"scene": last.split("-")[0]}}}}
    _, other, _ = search(api, concept, filtered)
    assert other[0] != last  # with a filter it is another query


def test_one_user_clicking_many_times_is_one_user(api: Api, corpus: list[str]) -> None:
    sid, before, _ = search(api)
    hit, other = before[8], before[9]
    click(api, sid, hit)
    _, once, _ = search(api)
    for _ in range(5):
        sid, _, _ = search(api)
        click(api, sid, hit)
    _, many, _ = search(api)
    assert many.index(hit) == once.index(hit)
    # two users clicking the hit ranked below it once each outweigh one user clicking six times
    sid, _, _ = search(api)
    for user in ("u2", "u3"):
        click(api, sid, other, user)
    _, two, _ = search(api)
    assert two.index(other) < two.index(hit), two


def test_clicks_decay_with_age(api: Api, corpus: list[str], core: VisionLoop) -> None:
    sid, before, base_scores = search(api)
    hit = before[8]
    click(api, sid, hit)
    _, fresh, fresh_scores = search(api)

    def age(days: int) -> float:
        with core.db.transaction() as s:
            s.execute(update(FeedbackEvent).values(created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days)))
        _, hits, scores = search(api)
        return scores[hits.index(hit)]

    month, years = age(30), age(3 * 365)
    assert fresh_scores[fresh.index(hit)] > month > years
    assert years == pytest.approx(base_scores[8], abs=1e-4)


def test_erasing_an_end_user_erases_their_clicks_effect(api: Api, corpus: list[str]) -> None:
    _, before, scores = search(api)
    sid, _, _ = search(api)
    click(api, sid, before[8], "alice")
    click(api, sid, before[6], "alice")
    assert search(api)[1] != before
    r = api.delete("/feedback", params={"end_user_id": "alice"})
    assert r.status_code == 200 and r.json()["erased"] == 2, r.text
    assert search(api)[1:] == (before, scores)


def test_exploration_is_off_by_default(api: Api, corpus: list[str], core: VisionLoop) -> None:
    for _ in range(5):
        search(api)
    with core.db.session() as s:
        assert list(s.scalars(select(SearchHit.propensity).where(SearchHit.propensity.is_not(None)))) == []


class TestExploration:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"fetch_allow_hosts": "127.0.0.1", "search_explore_rate": 1.0}

    def test_an_explored_hit_is_logged_with_its_propensity(self, api: Api, corpus: list[str],
                                                           core: VisionLoop) -> None:
        top = search(api, per_page=5)[1] + search(api, page=2, per_page=5)[1]  # too short a page to explore
        sid, shown, _ = search(api)
        with core.db.session() as s:
            explored = s.execute(select(SearchHit.rank, SearchHit.input_id, SearchHit.propensity)
                                 .where(SearchHit.search_id == sid, SearchHit.propensity.is_not(None))).all()
        assert len(explored) == 1, explored
        rank, input_id, propensity = explored[0]
        assert 6 <= rank <= 10 and shown[rank - 1] == input_id and input_id not in top
        assert [h for h in shown if h != input_id] == top[:9]
        assert propensity == pytest.approx(1 / (len(corpus) - 10) / 5)  # one of 14 hits below, at one of 5 places


def test_scores_stay_between_0_and_1_in_ranking_order(api: Api, corpus: list[str]) -> None:
    sid, before, scores = search(api)
    assert scores[0] > 0.9  # a variant of the query's own photo: the memory would lift it past 1
    for user in ("u1", "u2", "u3"):
        click(api, sid, before[0], user)
    _, after, scores = search(api, per_page=30)
    assert after[0] == before[0]
    assert all(0.0 <= s <= 1.0 for s in scores), scores
    assert scores == sorted(scores, reverse=True)


def test_only_a_query_with_remembered_clicks_asks_the_store_for_the_wider_list(
        api: Api, corpus: list[str], core: VisionLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    """A vector store's cost grows with the hits it is asked for (pgvector's ef_search): a first page
    with nothing remembered asks for the page and the exploration pool, as before the memory."""
    asked: list[int] = []
    nearest = core.search.indexes.nearest
    monkeypatch.setattr(core.search.indexes, "nearest", lambda app, q, k, c: asked.append(k) or nearest(app, q, k, c))
    sid, before, _ = search(api)
    assert asked == [10 + EXPLORE_POOL]
    click(api, sid, before[8])
    asked.clear()
    search(api)
    assert asked == [10 + EXPLORE_POOL, MEMORY_TOP]
    asked.clear()
    search(api, by_image(scene_variants(scene("rocket"), 1, seed=5, quality=90)[0]))  # nothing like it clicked
    assert asked == [10 + EXPLORE_POOL]
