"""Alarms as an operator sees them through ``GET /v2/alarms``: input drift when predict traffic turns
from photos to line drawings (and back), feedback quality when a concept's verdicts turn negative,
search CTR when clicks stop; nothing for i.i.d. traffic; nothing of another app; the webhook."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.alarm_traffic import drawings, photos
from tests.conftest import make_api
from tests.feedback_support import GENERAL, concept_body, predict, search_body
from tests.helpers import Api, b64
from visionloop.core import VisionLoop
from visionloop.services.monitoring.webhook import SIGNATURE_HEADER, signature

METRICS_TOKEN = "a-scraper-token-of-16-or-more"
REFERENCE, WINDOW = 100, 50  # smaller than the defaults (200, 100): the test stays fast; docs/alarms.md


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"alarm_drift_reference": REFERENCE, "alarm_drift_window": WINDOW, "alarm_feedback_window": 50,
            "alarm_search_window": 20, "alarm_search_settle_seconds": 0, "feedback_rate_limit": 0,
            "feedback_dedup_seconds": 0, "metrics": "token", "metrics_token": METRICS_TOKEN}


def alarms(api: Api, **params: Any) -> list[dict]:
    r = api.get("/alarms", params=params)
    assert r.status_code == 200 and r.json()["status"]["code"] == 10000, r.text
    return r.json()["alarms"]


def predict_and_check(api: Api, core: VisionLoop, images: list[bytes], batch: int = 10) -> Iterator[int]:
    """Predict ``images`` in batches, checking the app's alarms after each; yields how many were sent."""
    for start in range(0, len(images), batch):
        r = api.post(f"/models/{GENERAL}/outputs",
                     {"inputs": [{"data": {"image": {"base64": b64(img)}}} for img in images[start:start + batch]]})
        assert r.status_code == 200, r.text
        core.alarms.check(api.app_id)
        yield start + batch


def test_drift_fires_on_drawings_and_resolves_when_photos_return(api: Api, other_api: Api, core: VisionLoop) -> None:
    for _ in predict_and_check(api, core, photos(REFERENCE + 3 * WINDOW, seed=1)):  # reference, then 10 windows
        assert alarms(api) == []  # i.i.d. photos: no alarm (docs/alarms.md measures the rate)
    fired_after = next((n for n in predict_and_check(api, core, drawings(2 * WINDOW, seed=2))
                        if alarms(api, state="firing")), None)
    assert fired_after is not None and fired_after <= WINDOW, fired_after
    [alarm] = alarms(api)
    assert alarm["kind"] == "input_drift" and alarm["state"] == "firing" and alarm["model"] == {"id": GENERAL}
    assert alarm["figure"] > alarm["threshold"] and alarm["evidence_count"] == WINDOW and alarm["concept"] is None
    assert alarms(other_api) == []  # another app sees nothing
    assert [(a.app_id, a.model_id, a.kind) for a in core.alarms.firing()] == [(api.app_id, GENERAL, "input_drift")]

    resolved_after = next((n for n in predict_and_check(api, core, photos(4 * WINDOW, seed=3))
                           if not alarms(api, state="firing")), None)
    assert resolved_after is not None and resolved_after >= WINDOW, resolved_after  # a whole window inside first
    [alarm] = alarms(api, state="resolved")
    assert alarm["since"] <= alarm["updated_at"]


def test_after_a_promotion_drift_compares_traffic_with_the_versions_training_images(api: Api,
                                                                                    core: VisionLoop) -> None:
    from visionloop import status
    from visionloop.store.tables import FeedbackEvent, ModelVersion, utcnow

    for start in range(0, REFERENCE, 10):  # photos predicted and judged: what the version learns from
        r = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(img)}}}
                                                              for img in photos(10, seed=100 + start)]})
        for output in r.json()["outputs"]:
            concept = output["data"]["concepts"][0]["id"]
            assert api.post(f"/models/{GENERAL}/feedback",
                            concept_body(output["id"], [{"id": concept, "value": True}])).status_code == 200
    view = core.models.get(api.app_id, GENERAL)
    with core.db.transaction() as s:
        last_seq = s.query(FeedbackEvent.seq).order_by(FeedbackEvent.seq.desc()).limit(1).scalar()
        s.add(ModelVersion(id="trained-on-photos", model_pk=view.model.pk, app_id=api.app_id,
                           parent_id=view.version.id, status_code=status.MODEL_TRAINED, created_at=utcnow(),
                           params={"kind": "base", "trained_on": {"last_seq": last_seq}}))
    core.models.set_active(api.app_id, view.model, "trained-on-photos")
    # only drawings since the promotion: early traffic would be drawings too, and never fire
    fired_after = next((n for n in predict_and_check(api, core, drawings(WINDOW, seed=7))
                        if alarms(api, state="firing")), None)
    assert fired_after == WINDOW  # the first window since the promotion, against the training photos
    [alarm] = alarms(api)
    assert alarm["kind"] == "input_drift" and alarm["baseline"] == "trained-on-photos"


def judge(api: Api, core: VisionLoop, output: dict, concept: str, negatives: list[bool]) -> None:
    """One verdict on ``concept`` per item (by different end users), then an alarm check."""
    for i, negative in enumerate(negatives):
        r = api.post(f"/models/{GENERAL}/feedback", concept_body(
            output["id"], [{"id": concept, "value": not negative}], end_user_id=f"user-{i % 97}"))
        assert r.status_code == 200, r.text
    core.alarms.check(api.app_id)


def negative_concept(api: Api, core: VisionLoop) -> tuple[dict, str]:
    """A concept judged 20% negative over 200 verdicts, then 50% over 50: its alarm is firing."""
    output = predict(api, GENERAL, photos(1, seed=4)[0])
    concept = output["data"]["concepts"][0]["id"]
    judge(api, core, output, concept, [i % 5 == 0 for i in range(200)])
    judge(api, core, output, concept, [i % 5 == 0 for i in range(3)] + [True] * 3)  # 3 fresh complaints: no evidence
    assert alarms(api) == []
    judge(api, core, output, concept, [i % 2 == 0 for i in range(50)])
    return output, concept


def test_a_concept_whose_feedback_turns_negative_fires_and_resolves(api: Api, core: VisionLoop) -> None:
    notified: list[dict] = []
    core.alarms.notify = notified.extend  # what the webhook would be sent
    output, concept = negative_concept(api, core)
    [alarm] = alarms(api, state="firing")
    assert alarm["kind"] == "feedback_quality" and alarm["concept"]["id"] == concept
    assert alarm["evidence_count"] == 50 and alarm["figure"] >= alarm["threshold"] > 0.2
    for _ in range(4):  # back to 20%: resolves once a whole window stayed inside
        judge(api, core, output, concept, [i % 5 == 0 for i in range(25)])
    assert alarms(api, state="firing") == [] and alarms(api)[0]["state"] == "resolved"
    assert [(a["kind"], a["state"]) for a in notified] == [("feedback_quality", "firing"),
                                                           ("feedback_quality", "resolved")]


def test_a_firing_alarm_is_a_prometheus_gauge(api: Api, other_api: Api, core: VisionLoop, client: Any) -> None:
    negative_concept(api, core)
    r = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200, r.text
    firing = {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(r.text)
              for s in family.samples if s.name == "visionloop_alarms_firing"}
    assert firing == {(("app", api.app_id), ("kind", "feedback_quality"), ("model", GENERAL)): 1}


def test_promoting_a_version_resets_the_baseline_and_resolves(api: Api, core: VisionLoop) -> None:
    from tests.console.support import trained_versions

    output, concept = negative_concept(api, core)
    assert alarms(api, state="firing")
    trained_versions(core, api.app_id, GENERAL, 1)  # a promotion
    core.alarms.check(api.app_id)
    [alarm] = alarms(api)
    assert alarm["state"] == "resolved" and alarm["baseline"] == "base"
    judge(api, core, output, concept, [True] * 10)  # the new version's history is too short to judge
    assert alarms(api, state="firing") == []


def test_search_ctr_alarm_fires_when_clicks_stop(api: Api, core: VisionLoop) -> None:
    api.add_image("hit-1", (200, 30, 30))
    api.add_image("hit-2", (30, 200, 30))
    query = {"query": {"ands": [{"output": {"input": {"data": {"image": {"base64": b64(photos(1, seed=5)[0])}}}}}]}}

    def search(clicked: bool) -> None:
        r = api.post("/searches", query)
        assert r.status_code == 200, r.text
        body = r.json()
        if clicked:
            hit = body["hits"][0]["input"]["id"]
            assert api.post("/searches/feedback", search_body(body["id"], hit)).status_code == 200

    for i in range(40):
        search(clicked=i % 2 == 0)
    core.alarms.check(api.app_id)
    assert alarms(api) == []
    for _ in range(20):
        search(clicked=False)
    core.alarms.check(api.app_id)
    firing = alarms(api, state="firing")
    assert {a["kind"] for a in firing} == {"search_ctr", "search_mrr"}
    assert all(a["query_kind"] and a["model"] is None and a["evidence_count"] == 20 for a in firing)


def test_alarms_need_feedback_admin_and_refuse_a_bad_state(api: Api, core: VisionLoop, client: Any) -> None:
    narrow = make_api(core, client, api.app_id, ("predict", "feedback"))
    r = narrow.get("/alarms")
    assert r.status_code == 403 and r.json()["status"]["code"] == 11007
    r = api.get("/alarms", params={"state": "burning"})
    assert r.status_code == 400 and "state" in r.json()["status"]["details"]
    assert api.get("/alarms", params={"page": 2, "per_page": 5}).json()["alarms"] == []


class Receiver:
    """A loopback HTTP server that fails its first ``failures`` POSTs with 503, then records bodies."""

    def __init__(self, failures: int) -> None:
        received: list[tuple[bytes, dict[str, str]]] = []
        self.received = received
        state = {"failures": failures, "attempts": 0}
        self.state = state

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                state["attempts"] += 1
                code = 503 if state["failures"] > 0 else 204
                state["failures"] -= 1
                if code == 204:
                    received.append((body, dict(self.headers)))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alarms"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_is_signed_retried_and_refused_for_private_addresses(core: VisionLoop) -> None:
    from visionloop.services.fetch import ImageFetcher
    from visionloop.services.monitoring.webhook import Webhook

    receiver = Receiver(failures=2)
    waits: list[float] = []
    try:
        allowed = ImageFetcher(timeout=5, max_bytes=1024, max_redirects=0, allow=("127.0.0.1",))
        hook = Webhook(allowed, receiver.url, "s3cret", attempts=4, backoff=0.5, sleep=waits.append)
        assert hook([{"id": "a1", "kind": "input_drift", "state": "firing"}])
        assert receiver.state["attempts"] == 3 and waits == [0.5, 1.0]  # two 503s, then accepted; backoff doubles
        [(body, headers)] = receiver.received
        assert headers[SIGNATURE_HEADER] == signature("s3cret", body)
        assert json.loads(body)["alarms"][0]["id"] == "a1"

        strict = ImageFetcher(timeout=5, max_bytes=1024, max_redirects=0)  # loopback not allowed: never sent
        assert not Webhook(strict, receiver.url, "s3cret", attempts=2, backoff=0, sleep=waits.append)([{"id": "a2"}])
        assert receiver.state["attempts"] == 3
    finally:
        receiver.close()


def test_a_firing_alarm_shows_on_the_console_overview(api: Api, other_api: Api, core: VisionLoop,
                                                      client: Any) -> None:
    from tests.console.support import sign_in
    from visionloop.store.tables import Alarm, Model, utcnow

    with core.db.transaction() as s:
        pk = s.query(Model.pk).filter(Model.id == GENERAL).scalar()
        s.add(Alarm(id="alarm-1", app_id=api.app_id, kind="feedback_quality", model_pk=pk, subject="c1",
                    subject_name="tabby cat", state="firing", since=utcnow(), figure=0.48, threshold=0.36,
                    evidence=50, p_value=0.001, baseline="base", last_outside=utcnow()))
    sign_in(client, api.key)
    html = client.get("/console").text
    assert 'id="alarms"' in html and "feedback_quality" in html and "tabby cat" in html
    client.cookies.clear()
    sign_in(client, other_api.key)
    assert 'id="alarms"' not in client.get("/console").text


def test_a_deleted_models_firing_alarm_resolves(api: Api, core: VisionLoop) -> None:
    """A deleted model moves to a tombstone app: nothing checks it any more, so its alarm must not
    stay firing (in the list and the gauge) for ever."""
    from visionloop.store.tables import Alarm, Model, utcnow

    assert api.post("/models", {"model": {"id": "pets", "output_info": {"data": {"concepts": [{"id": "cat"}]}}}}
                    ).status_code == 200
    with core.db.transaction() as s:
        pk = s.query(Model.pk).filter(Model.id == "pets", Model.app_id == api.app_id).scalar()
        s.add(Alarm(id="alarm-pets", app_id=api.app_id, kind="feedback_quality", model_pk=pk, subject="cat",
                    subject_name="cat", state="firing", since=utcnow(), figure=0.5, threshold=0.4, evidence=50,
                    p_value=0.001, baseline="base", last_outside=utcnow()))
    assert api.delete("/models/pets").status_code == 200
    core.alarms.check(api.app_id)
    assert alarms(api, state="firing") == [] and core.alarms.firing() == []


@pytest.mark.parametrize("settings_overrides", [{"alarm_drift_reference": REFERENCE, "alarm_drift_window": WINDOW,
                                                 "output_retention_days": 30}])
def test_outputs_kept_past_retention_are_not_the_drift_reference(api: Api, core: VisionLoop) -> None:
    """Pruning keeps the outputs feedback refers to: the oldest outputs left are the judged ones, no
    sample of traffic. The early-traffic reference starts at the retention horizon instead."""
    import datetime as dt

    from sqlalchemy import update

    from visionloop.store.tables import Output, utcnow

    list(predict_and_check(api, core, drawings(REFERENCE, seed=8), batch=REFERENCE))  # judged long ago: kept
    with core.db.transaction() as s:
        s.execute(update(Output).where(Output.app_id == api.app_id).values(created_at=utcnow() - dt.timedelta(days=40)))
    for _ in predict_and_check(api, core, photos(REFERENCE + 2 * WINDOW, seed=9), batch=25):
        assert alarms(api) == []


def test_a_check_that_failed_to_store_is_judged_again(api: Api, core: VisionLoop,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A model with nothing new since its last check is skipped; a check whose outcome was never
    stored (the database failed) must not count as one."""
    from visionloop.services.monitoring.alarms import AlarmService

    output = predict(api, GENERAL, photos(1, seed=4)[0])
    concept = output["data"]["concepts"][0]["id"]
    judge(api, core, output, concept, [i % 5 == 0 for i in range(200)])
    apply = AlarmService._apply

    def failing(*args: Any) -> Any:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(AlarmService, "_apply", staticmethod(failing))
    with pytest.raises(RuntimeError):
        judge(api, core, output, concept, [i % 2 == 0 for i in range(50)])
    monkeypatch.setattr(AlarmService, "_apply", staticmethod(apply))
    core.alarms.check(api.app_id)  # no new verdict since the failed check
    assert [a["kind"] for a in alarms(api, state="firing")] == ["feedback_quality"]
