"""What a hostile or careless tenant could do (issue 25): each test drives the HTTP API as one would."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from tests.conftest import make_api
from tests.feedback_support import GENERAL, concept_body, feedback, predict, search_body, status
from tests.helpers import Api, png_bytes, scene, scene_variants, train
from visionloop.core import VisionLoop
from visionloop.http.schemas import MAX_TERMS
from visionloop.learning.promotion import Decision
from visionloop.services.training import service as training_service
from visionloop.services.training.click_votes import click_votes, general_concepts
from visionloop.services.training.concept_training import InsufficientData, train_heads
from visionloop.services.training.data import concept_data
from visionloop.store.blobs import digest_of


def _concepts(n: int) -> list[dict]:
    return [{"name": f"c{i}", "value": True} for i in range(n)]


def test_a_query_is_capped_in_terms_with_a_clear_refusal(api: Api) -> None:
    api.add_image("i1")
    r = api.post("/searches", {"query": {"ands": [{"input": {"data": {"concepts": _concepts(MAX_TERMS)}}}]}})
    assert r.status_code == 200, r.text
    r = api.post("/searches", {"query": {"ands": [{"input": {"data": {"concepts": _concepts(40_000)}}}]}})
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


# -- 2. erasure and explicit activation ------------------------------------------------------------
BASE = "aa9ca48295b37401f8af92ad1af0d91d"  # the general model's shared base version


def _judge(api: Api, name: str, n: int, seed: int, present: bool, user: str) -> None:
    images = scene_variants(scene(name), n, seed, quality=85)
    for data in images:
        out = predict(api, GENERAL, data)
        r = api.post(f"/models/{GENERAL}/feedback", concept_body(out["id"], [{"id": "kitty", "value": present}],
                                                                 end_user_id=user))
        assert r.status_code == 200, r.text


def _active(api: Api) -> str:
    return api.get(f"/models/{GENERAL}").json()["model"]["model_version"]["id"]


def _versions(api: Api) -> list[dict]:
    return api.get(f"/models/{GENERAL}/versions").json()["model_versions"]


def _rule_promotes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A few labels make every comparison 'too few': let the rule say promote, to see what else decides."""
    def winning(*args: Any, **kw: Any) -> Any:
        trained = train_heads(*args, **kw)
        return dataclasses.replace(trained, decision=Decision(True, "promoted: it wins", []))

    monkeypatch.setattr(training_service, "train_heads", winning)


@pytest.fixture
def learned(api: Api) -> dict:
    """A trained version of the general model that learned from carol's one event (and enough others)."""
    _judge(api, "chelsea", 9, 1, True, "alice")
    _judge(api, "coffee", 9, 2, False, "bob")
    _judge(api, "chelsea", 1, 3, True, "carol")
    version = train(api, GENERAL)
    assert version["status"]["code"] == 21100, version
    return version


def test_an_erasure_neither_undoes_a_rollback_nor_lets_a_feedback_admin_key_change_the_version(
        api: Api, core: VisionLoop, client: Any, learned: dict) -> None:
    assert api.post(f"/models/{GENERAL}/versions/{BASE}/activate").status_code == 200  # the operator rolls back
    before = _versions(api)
    admin = make_api(core, client, api.app_id, ("feedback_admin",))
    r = admin.delete("/feedback", params={"end_user_id": "carol"})
    assert r.status_code == 200 and r.json()["erased"] == 1, r.text
    assert _active(api) == BASE
    assert _versions(api) == before  # the active version learned nothing from carol: nothing to retrain


def test_an_activation_by_hand_holds_until_a_version_wins_on_feedback_given_since(
        api: Api, learned: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    _rule_promotes(monkeypatch)
    assert api.post(f"/models/{GENERAL}/versions/{BASE}/activate").status_code == 200  # a rollback
    again = train(api, GENERAL)  # on the feedback the operator rolled back from: it cannot win
    assert again["status"]["code"] == 21100 and _active(api) == BASE, again["visionloop"]
    assert again["visionloop"]["promoted"] is False and "activated by hand" in again["visionloop"]["decision"]
    _judge(api, "chelsea", 1, 4, True, "dave")  # feedback given since the rollback
    newer = train(api, GENERAL)
    assert newer["visionloop"]["promoted"] is True and _active(api) == newer["id"]
    # and once the operator's choice has been replaced, promotion follows the rule alone again
    latest = train(api, GENERAL)
    assert latest["visionloop"]["promoted"] is True and _active(api) == latest["id"]


def test_an_erasure_retrains_what_learned_from_it_and_promotes_only_by_the_rule(api: Api, core: VisionLoop,
                                                                                 client: Any, learned: dict) -> None:
    """The version learned from carol: it is retrained without her; an activation by hand still holds."""
    assert api.post(f"/models/{GENERAL}/versions/{learned['id']}/activate").status_code == 200
    admin = make_api(core, client, api.app_id, ("feedback_admin",))
    assert admin.delete("/feedback", params={"end_user_id": "carol"}).json()["erased"] == 1
    retrained = _versions(api)[0]
    assert retrained["visionloop"]["parent_id"] == learned["id"] and retrained["status"]["code"] == 21100
    assert retrained["visionloop"]["trained_on"]["events"] == 18
    assert _active(api) == learned["id"]  # by hand: the operator decides


def test_an_erasure_leaving_too_little_falls_back_to_the_base_version_unless_chosen_by_hand(
        api: Api, core: VisionLoop, client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _rule_promotes(monkeypatch)
    _judge(api, "chelsea", 9, 1, True, "alice")
    _judge(api, "coffee", 9, 2, False, "bob")
    promoted = train(api, GENERAL)
    assert _active(api) == promoted["id"]  # by the rule, not by hand
    assert api.delete("/feedback", params={"end_user_id": "alice"}).json()["erased"] == 9
    assert _versions(api)[0]["status"]["code"] == 21117 and _active(api) == BASE


# -- 6. a click counts for the image shown ----------------------------------------------------------
def test_a_click_counts_for_the_image_shown_never_for_one_stored_later_under_its_id(api: Api,
                                                                                  core: VisionLoop) -> None:
    shown, later = png_bytes((200, 10, 10)), png_bytes((10, 10, 200))
    helmet = [{"id": "helmet", "value": True}]
    api.add_image("rb1", (200, 10, 10), concepts=helmet)
    api.add_image("rb2", (10, 200, 10), concepts=helmet)
    query = {"query": {"ands": [{"input": {"data": {"concepts": helmet}}}]}}
    before = api.post("/searches", query).json()["id"]

    def click(search_id: str, user: str) -> None:
        r = api.post("/searches/feedback", search_body(search_id, "rb1", end_user_id=user))
        assert r.status_code == 200, r.text

    click(before, "u1")
    assert api.delete("/inputs/rb1").status_code == 200
    api.add_image("rb1", (10, 10, 200), concepts=helmet)  # another image under the same id
    click(before, "u2")  # on the search made before: it showed the first image
    after = api.post("/searches", query).json()["id"]
    click(after, "u3")
    with core.db.session() as s:
        votes, _ = click_votes(s, api.app_id, general_concepts(s, api.app_id))
    by_user = {v.end_user: v.item for v in votes}
    assert by_user == {"u1": (digest_of(shown), "helmet"), "u2": (digest_of(shown), "helmet"),
                       "u3": (digest_of(later), "helmet")}


# -- 3. fair training ---------------------------------------------------------------------------------
JOB_SECONDS = 0.4


@pytest.fixture
def slow_jobs(core: VisionLoop, monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[str, float]]:
    """Every training job takes JOB_SECONDS and finds too little data; version id -> (app, start time)."""
    started: dict[str, tuple[str, float]] = {}

    def job(version: Any, model: Any, say: Any) -> Any:
        started[version.id] = (version.app_id, time.monotonic())
        time.sleep(JOB_SECONDS)
        raise InsufficientData("a stand-in job", last_seq=None)

    monkeypatch.setattr(core.learning, "_train", job)
    return started


def _custom_models(api: Api, n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = api.post("/models", {"model": {"id": f"m{i}", "output_info": {"data": {"concepts": [{"id": "a"}]}}}})
        assert r.status_code == 200, r.text
        ids.append(f"m{i}")
    return ids


def _request(api: Api, model: str) -> str:
    r = api.post(f"/models/{model}/versions", {})
    assert r.status_code == 200, r.text
    return r.json()["model"]["model_version"]["id"]


def _wait(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)


def test_training_is_shared_fairly_between_apps(api: Api, other_api: Api, core: VisionLoop,
                                                slow_jobs: dict[str, tuple[str, float]]) -> None:
    core.start_worker()
    flood = [_request(api, m) for m in _custom_models(api, 5)]  # one app queues five jobs
    assert _request(api, "m4") == flood[4]  # a second request for a queued model joins it
    theirs = _request(other_api, GENERAL)
    _wait(lambda: len(slow_jobs) == 6, 20 * JOB_SECONDS)
    order = [app for app, _ in sorted(slow_jobs.values(), key=lambda p: p[1])]
    # the other app's job waits at most for the one job running when it was queued, not for the queue
    assert len(order) == 6 and order.index(other_api.app_id) <= 1, order
    assert theirs in slow_jobs


class TestAutomaticRetraining:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"retrain_after_events": 1, "retrain_check_seconds": 0.1}

    def test_it_keeps_running_while_the_queue_is_busy(self, api: Api, other_api: Api, core: VisionLoop,
                                                      slow_jobs: dict[str, tuple[str, float]]) -> None:
        core.start_worker()
        flood = [_request(api, m) for m in _custom_models(api, 6)]
        out = predict(other_api, GENERAL, png_bytes())
        r = other_api.post(f"/models/{GENERAL}/feedback", concept_body(out["id"], [{"id": "kitty"}]))
        assert r.status_code == 200, r.text
        _wait(lambda: any(app == other_api.app_id for app, _ in slow_jobs.values()), 10 * JOB_SECONDS)
        automatic = [v for v, (app, _) in slow_jobs.items() if app == other_api.app_id]
        assert automatic, "no automatic retraining while another app's jobs were queued"
        assert not set(flood) <= set(slow_jobs), "the automatic job waited for the whole queue"
