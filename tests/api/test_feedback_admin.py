"""Operators and feedback: listing with filters, erasure per end user, retention, export (API and CLI)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.conftest import make_api
from tests.feedback_support import FACE, GENERAL, concept_body, feedback, predict, region, region_body, status
from tests.helpers import Api, photo, png_bytes
from tests.helpers import run_cli as cli
from visionloop.core import VisionLoop
from visionloop.services.feedback import Erasure
from visionloop.store.tables import FeedbackEvent

DAY = dt.timedelta(days=1)
T0 = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.timezone.utc)


def send(api: Api, model: str, body: dict) -> None:
    r = api.post(f"/models/{model}/feedback", body)
    assert r.status_code == 200 and r.json()["status"]["code"] == 10000, r.text


def backdate(core: VisionLoop, when: dict[str, dt.datetime]) -> None:
    """Give events (by end user) a creation time in the past (tests only: the service never updates)."""
    with core.db.transaction() as s:
        for end_user, at in when.items():
            s.execute(update(FeedbackEvent).where(FeedbackEvent.end_user_id == end_user).values(created_at=at))


@pytest.fixture
def log(api: Api, core: VisionLoop) -> dict:
    """Five events: concepts on the general model by three end users, a face region, over five days."""
    cat = predict(api, GENERAL, photo("chelsea"))
    face = predict(api, FACE, photo("astronaut"))
    send(api, GENERAL, concept_body(cat["id"], [{"id": "cat"}], end_user_id="alice", session_id="s1"))
    send(api, GENERAL, concept_body(cat["id"], [{"id": "dog", "value": False}], end_user_id="alice", session_id="s2"))
    send(api, GENERAL, concept_body(cat["id"], [{"id": "cat", "value": False}], end_user_id="bob", session_id="s3"))
    send(api, FACE, region_body(face["id"], [region({"top_row": 0.8, "left_col": 0.8, "bottom_row": 0.9,
                                                     "right_col": 0.9}, "not_detected")], end_user_id="carol"))
    send(api, GENERAL, concept_body(cat["id"], [{"id": "tabby cat"}], end_user_id="dave", session_id="s1"))
    backdate(core, {"bob": T0 + 2 * DAY, "carol": T0 + 3 * DAY, "dave": T0 + 4 * DAY})
    with core.db.transaction() as s:  # alice's two on days 0 and 1
        seqs = sorted(s.scalars(select(FeedbackEvent.seq).where(FeedbackEvent.end_user_id == "alice")))
        for i, seq in enumerate(seqs):
            s.execute(update(FeedbackEvent).where(FeedbackEvent.seq == seq).values(created_at=T0 + i * DAY))
    return {"cat": cat, "face": face}


def users(events: list[dict]) -> list[str]:
    return [e["end_user_id"] for e in events]


def test_list_and_filters(api: Api, log: dict) -> None:
    assert users(feedback(api)) == ["alice", "alice", "bob", "carol", "dave"]
    assert users(feedback(api, model_id=FACE)) == ["carol"]
    assert users(feedback(api, model_id="general-v1.3")) == ["alice", "alice", "bob", "dave"]  # by name too
    assert users(feedback(api, version_id=log["face"]["model"]["model_version"]["id"])) == ["carol"]
    assert users(feedback(api, event_type="annotation")) == users(feedback(api))
    assert feedback(api, event_type="search_click") == []
    assert users(feedback(api, end_user_id="alice")) == ["alice", "alice"]
    assert users(feedback(api, session_id="s1")) == ["alice", "dave"]
    assert users(feedback(api, output_id=log["face"]["id"])) == ["carol"]
    assert users(feedback(api, created_after="2026-01-11T12:00:00Z")) == ["alice", "bob", "carol", "dave"]
    assert users(feedback(api, created_before="2026-01-12T12:00:00+00:00")) == ["alice", "alice"]
    assert users(feedback(api, created_after="2026-01-11", created_before="2026-01-13T13:00:00")) == ["alice", "bob",
                                                                                                       "carol"]
    # pages, oldest first
    pages = [users(feedback(api, page=p, per_page=2)) for p in (1, 2, 3, 4)]
    assert pages == [["alice", "alice"], ["bob", "carol"], ["dave"], []]
    event = feedback(api, end_user_id="carol")[0]
    assert set(event) >= {"id", "event_type", "created_at", "model_id", "version_id", "output_id", "search_id",
                          "input_id", "rank", "end_user_id", "session_id", "data", "raw"}
    assert event["created_at"] == "2026-01-13T12:00:00.000000Z"


@pytest.mark.parametrize("params,code,http,field", [
    ({"created_after": "yesterday"}, 11102, 400, "created_after"),
    ({"created_before": "2026-13-01"}, 11102, 400, "created_before"),
    ({"created_before": "9999-12-31T23:59:59-05:00"}, 11102, 400, "created_before"),  # year 10000 in UTC
    ({"created_after": "0001-01-01T00:00:00+05:00"}, 11102, 400, "created_after"),  # year 0 in UTC
    ({"event_type": "like"}, 11102, 400, "event_type"),
    ({"page": 0}, 11102, 400, "page"),
    ({"model_id": "no-such-model"}, 21200, 404, ""),
])
def test_bad_filters(api: Api, log: dict, params: dict, code: int, http: int, field: str) -> None:
    r = api.get("/feedback", params=params)
    assert status(r)[:2] == (http, code), r.text
    assert status(r)[2].startswith(field)


def test_apps_and_scopes(api: Api, other_api: Api, core: VisionLoop, client: TestClient, log: dict) -> None:
    assert feedback(other_api) == []
    sender = make_api(core, client, "app-a", ("feedback", "predict"))  # an end-user-facing key
    for r in (sender.get("/feedback"), sender.delete("/feedback", params={"end_user_id": "alice"})):
        assert status(r)[:2] == (403, 11007) and "feedback_admin" in status(r)[2]
    r = api.client.get("/v2/users/me/apps/app-a/feedback", headers=api.headers())
    assert len(r.json()["feedback"]) == 5


def test_erasure_per_end_user(api: Api, other_api: Api, core: VisionLoop, log: dict) -> None:
    seen: list[Erasure] = []
    core.feedback.log.erasure_hooks.append(seen.append)
    other_out = predict(other_api, GENERAL, png_bytes())
    send(other_api, GENERAL, concept_body(other_out["id"], [{"id": "cat"}], end_user_id="alice"))

    r = api.delete("/feedback", params={"end_user_id": "alice"})
    assert r.status_code == 200 and r.json() == {"status": {"code": 10000, "description": "Ok"}, "erased": 2}
    assert users(feedback(api)) == ["bob", "carol", "dave"]
    assert users(feedback(other_api)) == ["alice"]  # another app's end user of the same id is untouched
    (erasure,) = seen  # the hook that rebuilds derived labels
    assert (erasure.app_id, erasure.reason, erasure.end_user_id, erasure.count) == ("app-a", "end_user", "alice", 2)
    assert erasure.output_ids == {log["cat"]["id"]} and len(erasure.model_pks) == 1

    r = api.delete("/feedback", params={"end_user_id": "alice"})  # idempotent
    assert r.json()["erased"] == 0
    r = api.delete("/feedback")
    assert status(r)[:2] == (400, 11102) and status(r)[2].startswith("end_user_id: required")


def test_a_failing_rebuild_does_not_undo_the_erasure(api: Api, core: VisionLoop, log: dict,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    def broken(_: Erasure) -> None:
        raise RuntimeError("rebuild failed")

    core.feedback.log.erasure_hooks.append(broken)
    r = api.delete("/feedback", params={"end_user_id": "bob"})
    assert r.status_code == 200 and r.json()["erased"] == 1
    assert "bob" not in users(feedback(api)) and "erasure hook" in caplog.text


def test_retention_prune(api: Api, core: VisionLoop, log: dict) -> None:
    now = T0 + 5 * DAY  # alice's events are 5 and 4 days old, bob 3, carol 2 (exactly: kept), dave 1
    assert core.feedback.log.prune(now=now) == []  # the default retention is 0: keep forever
    (erasure,) = core.feedback.log.prune(now=now, days=2)
    assert (erasure.reason, erasure.count) == ("retention", 3)
    assert users(feedback(api)) == ["carol", "dave"]


class TestRetentionSetting:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"fetch_allow_hosts": "127.0.0.1", "feedback_retention_days": 1}

    def test_prune_uses_the_setting(self, api: Api, core: VisionLoop, log: dict) -> None:
        (erasure,) = core.feedback.log.prune(now=T0 + 5 * DAY)
        assert erasure.count == 4 and users(feedback(api)) == ["dave"]


# -- the command line -------------------------------------------------------------------------------
def test_cli_export_erase_prune(api: Api, core: VisionLoop, log: dict, tmp_path: Path) -> None:
    r = cli(core, "feedback", "export", "--app", "app-a", "--format", "jsonl")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [e["end_user_id"] for e in lines] == ["alice", "alice", "bob", "carol", "dave"]
    assert lines == feedback(api)  # the export is the API's listing, line by line
    assert "exported 5 feedback events" in r.stderr

    out = tmp_path / "alice.jsonl"
    r = cli(core, "feedback", "export", "--app", "app-a", "--end-user-id", "alice", "--output", str(out))
    assert r.returncode == 0 and len(out.read_text().splitlines()) == 2

    r = cli(core, "feedback", "export", "--app", "ghost")
    assert r.returncode == 2 and "ghost" in r.stderr and "Traceback" not in r.stderr

    r = cli(core, "feedback", "erase", "--app", "app-a", "--end-user-id", "alice")
    assert r.returncode == 0 and "erased 2 feedback events" in r.stdout, r.stderr
    assert "alice" not in users(feedback(api))

    r = cli(core, "feedback", "prune")  # retention 0: nothing
    assert r.returncode == 0 and "nothing pruned" in r.stdout
    r = cli(core, "feedback", "prune", env={"VISIONLOOP_FEEDBACK_RETENTION_DAYS": "30"})
    assert r.returncode == 0 and "pruned 3 feedback events older than 30 days" in r.stdout, r.stdout + r.stderr
    assert feedback(api) == []


def test_cli_parquet(api: Api, core: VisionLoop, log: dict, tmp_path: Path) -> None:
    out = tmp_path / "feedback.parquet"
    r = cli(core, "feedback", "export", "--format", "parquet", "--output", str(out))
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert r.returncode == 2 and "pyarrow" in r.stderr and "Traceback" not in r.stderr
        return
    assert r.returncode == 0, r.stderr
    table = pq.read_table(out).to_pylist()
    assert [row["end_user_id"] for row in table] == ["alice", "alice", "bob", "carol", "dave"]
    assert json.loads(table[3]["data"])["kind"] == "regions" and table[0]["model_id"] == GENERAL
    assert not table[0]["unlinked"] and not table[0]["model_deleted"]
    r = cli(core, "feedback", "export", "--format", "parquet")
    assert r.returncode == 2 and "--output" in r.stderr
