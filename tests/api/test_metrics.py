"""GET /metrics: the figures match the requests made, parsed by prometheus-client's own parser; the
setting decides who may read them (off, bearer token, own port)."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.feedback_support import FACE, GENERAL, concept_body, predict, region, region_body, search_body
from tests.helpers import Api, b64, free_port, photo, train
from tests.test_postgres_writers import Server
from visionloop.cli import main
from visionloop.config import SettingsError, load_settings
from visionloop.core import VisionLoop
from visionloop.http.app import create_app
from visionloop.metrics import METRICS

TOKEN = "s3cret-token-for-the-scraper"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"fetch_allow_hosts": "127.0.0.1", "metrics": "token", "metrics_token": TOKEN}


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(client: TestClient) -> Samples:
    r = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    return parse(r.text)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def ok(r: Any) -> None:
    assert r.status_code == 200, r.text


def test_figures_match_the_requests_made(api: Api, core: VisionLoop, client: TestClient) -> None:
    before = scrape(client)
    r = api.post("/inputs", {"inputs": [{"id": name, "data": {"image": {"base64": b64(photo(name))}}}
                                        for name in ("chelsea", "coffee", "rocket")]})
    ok(r)
    cat = predict(api, GENERAL, photo("chelsea"))
    ok(api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(photo(n))}}}
                                                          for n in ("coffee", "rocket")]}))
    faces = predict(api, FACE, photo("astronaut"))
    ok(api.post(f"/models/{GENERAL}/feedback", concept_body(cat["id"], [{"id": "cat", "value": True},
                                                                        {"id": "dog", "value": False}])))
    ok(api.post(f"/models/{GENERAL}/feedback", concept_body(cat["id"], [{"id": "tabby", "value": 1.0}],
                                                            end_user_id="user-2")))
    retry = concept_body(cat["id"], [{"id": "tabby", "value": 1.0}], end_user_id="user-2")
    ok(api.post(f"/models/{GENERAL}/feedback", retry))  # the same statement again: stored once
    boxes = [{"top_row": top, "left_col": 0.0, "bottom_row": top + 0.1, "right_col": 0.1} for top in (0.1, 0.4, 0.7)]
    ok(api.post(f"/models/{FACE}/feedback", region_body(faces["id"], [region(boxes[0], "false_positive"),
                                                                      region(boxes[1], "misplaced"),
                                                                      region(boxes[2], 2)])))
    r = api.post("/searches", {"query": {"ands": [{"output": {"input": {"id": "chelsea"}}}]}})
    ok(r)
    hits = [h["input"]["id"] for h in r.json()["hits"]]
    ok(api.post("/searches/feedback", search_body(r.json()["id"], hits[1])))
    ok(api.post("/searches", {"query": {"ands": [{"output": {"data": {"concepts": [{"name": "cat"}]}}}]}}))
    assert api.get("/models/no-such-model").status_code == 404
    version = train(api, GENERAL)  # too little feedback: the job ends with insufficient data
    assert version["status"]["code"] == 21117, version
    core.monitoring._sizes.clear()  # the first scrape's index sizes serve a minute: this one counts anew
    after = scrape(client)

    assert delta(before, after, "visionloop_images_predicted_total", model=GENERAL) == 3
    assert delta(before, after, "visionloop_images_predicted_total", model=FACE) == 1
    assert delta(before, after, "visionloop_feedback_events_total", type="concepts") == 2
    assert delta(before, after, "visionloop_feedback_events_total", type="regions") == 1
    assert delta(before, after, "visionloop_feedback_events_total", type="search_click") == 1
    assert delta(before, after, "visionloop_feedback_duplicates_total") == 1
    assert delta(before, after, "visionloop_feedback_verdicts_total", type="concept", verdict="positive") == 2
    assert delta(before, after, "visionloop_feedback_verdicts_total", type="concept", verdict="negative") == 1
    for verdict in ("false_positive", "misplaced", "not_detected"):
        assert delta(before, after, "visionloop_feedback_verdicts_total", type="region", verdict=verdict) == 1
    assert delta(before, after, "visionloop_feedback_verdicts_total", type="region", verdict="accurate") == 0
    assert delta(before, after, "visionloop_searches_total", kind="visual") == 1
    assert delta(before, after, "visionloop_searches_total", kind="predicted") == 1
    assert delta(before, after, "visionloop_search_clicks_total", kind="visual") == 1
    # every feedback request went through the group commit alone here: one event per transaction
    assert delta(before, after, "visionloop_feedback_commit_batch_events_count") == 5
    assert delta(before, after, "visionloop_feedback_commit_batch_events_sum") == 5
    assert delta(before, after, "visionloop_dynamic_batch_images_sum") >= 4  # the inputs' analysis runs it too
    assert delta(before, after, "visionloop_training_jobs_finished_total", state="insufficient_data") == 1
    assert delta(before, after, "visionloop_training_duration_seconds_count", state="insufficient_data") == 1

    requests = "visionloop_http_requests_total"
    feedback_route = "/v2/models/{model_id}/feedback"  # served by the fast lane
    assert delta(before, after, requests, method="POST", route=feedback_route, status="200") == 4
    assert delta(before, after, requests, method="POST", route="/v2/models/{model_id}/outputs", status="200") == 3
    assert delta(before, after, requests, method="POST", route="/v2/searches", status="200") == 2
    assert delta(before, after, requests, method="POST", route="/v2/searches/feedback", status="200") == 1
    assert delta(before, after, requests, method="GET", route="/v2/models/{model_id}", status="404") == 1
    assert delta(before, after, requests, method="GET", route="/metrics", status="200") == 1  # the first scrape
    assert delta(before, after, "visionloop_http_request_duration_seconds_count", method="POST",
                 route=feedback_route) == 4
    assert not any(name == requests and "chelsea" in str(labels) for name, labels in after)  # templates, not paths

    # read from the database at scrape time
    assert after[("visionloop_vector_index_entries", (("app", "app-a"),))] == 3
    assert after[("visionloop_training_jobs", (("state", "queued"),))] == 0


def test_routes_are_counted_by_template(api: Api, client: TestClient) -> None:
    before = scrape(client)
    for path in ("/nothing/here", "/v2/nothing-1", "/v2/nothing-2"):
        assert client.get(path).status_code == 404
    assert client.get("/v2/users/me/apps/app-a/models/xyz", headers=api.headers()).status_code == 404
    assert client.get("/static/docs/redoc/redoc.standalone.js").status_code == 200
    assert client.request("BREW", "/v2/models").status_code == 405
    after = scrape(client)
    requests = "visionloop_http_requests_total"
    assert delta(before, after, requests, method="GET", route="<unmatched>", status="404") == 3
    assert delta(before, after, requests, method="GET", route="/v2/users/{user_id}/apps/{app_id}/models/{model_id}",
                 status="404") == 1
    assert delta(before, after, requests, method="GET", route="/static/docs/{path}", status="200") == 1
    assert delta(before, after, requests, method="other", route="/v2/models", status="405") == 1


def test_the_active_version_is_an_info_label(api: Api, core: VisionLoop, client: TestClient) -> None:
    view = core.models.get("app-a", GENERAL)
    core.models.set_active("app-a", view.model, view.version.id, by_hand=True)
    samples = scrape(client)
    key = ("visionloop_active_version_info", (("app", "app-a"), ("by_hand", "true"), ("model", GENERAL),
                                              ("version", view.version.id)))
    assert samples[key] == 1


def test_the_token_is_required(api: Api, client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-of-some-length"}, {"Authorization": f"Key {api.key}"},
                    {"Authorization": f"Basic {TOKEN}"}, {"Authorization": f"Bearer {TOKEN}x"}):
        r = client.get("/metrics", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer"), headers
        assert r.headers["content-type"].startswith("text/plain") and "visionloop_" not in r.text
    assert client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200


def test_off_by_default(core: VisionLoop) -> None:
    assert load_settings(environ={}).metrics == "off"
    settings = load_settings({"data_dir": core.settings.data_dir, "database_url": core.settings.database_url},
                             environ={})
    with TestClient(create_app(settings, core)) as c:
        assert c.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


@pytest.fixture
def port_mode(core: VisionLoop) -> Iterator[tuple[TestClient, int]]:
    port = free_port()
    settings = load_settings({"data_dir": core.settings.data_dir, "database_url": core.settings.database_url,
                              "metrics": "port", "metrics_port": port}, environ={})
    with TestClient(create_app(settings, core)) as c:
        yield c, port


def test_port_mode_serves_its_own_listener_only(port_mode: tuple[TestClient, int]) -> None:
    client, port = port_mode
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        samples = parse(r.read().decode())
    process = parse(generate_latest(METRICS.registry).decode())
    assert all(samples[key] == value for key, value in process.items() if not key[0].endswith("_created"))
    assert ("visionloop_training_jobs", (("state", "training"),)) in samples
    assert client.get("/metrics").status_code == 404


def test_port_mode_stops_with_the_app(core: VisionLoop) -> None:
    port = free_port()
    settings = load_settings({"data_dir": core.settings.data_dir, "database_url": core.settings.database_url,
                              "metrics": "port", "metrics_port": port}, environ={})
    for _ in range(2):  # started again on the same port: the first listener let it go
        with TestClient(create_app(settings, core)):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"metrics": "token"}, "VISIONLOOP_METRICS_TOKEN of 16"),
    ({"metrics": "token", "metrics_token": "short"}, "VISIONLOOP_METRICS_TOKEN of 16"),
    ({"metrics": "port", "metrics_token": TOKEN}, "unset VISIONLOOP_METRICS_TOKEN"),
    ({"metrics": "open"}, "VISIONLOOP_METRICS must be one of off, token, port"),
    ({"metrics_port": 0}, "VISIONLOOP_METRICS_PORT must be from 1"),
])
def test_settings_are_checked(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(overrides, environ={})


@pytest.mark.slow
def test_each_process_is_scraped_on_its_own(tmp_path: Path) -> None:
    """Two ``serve`` processes on one database, each with its own metrics port: each counts only the
    requests it answered; the figures read from the database are the same on both."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ports = [free_port(), free_port()]
    servers: list[Server] = []
    try:
        for n, port in enumerate(ports):  # one after the other: the first creates the SQLite database
            servers.append(Server(url, tmp_path / f"data-{n}", tmp_path / f"serve-{n}.log", VISIONLOOP_METRICS="port",
                                  VISIONLOOP_METRICS_PORT=str(port)))
            servers[-1].wait_ready()
        for server, times in zip(servers, (3, 1)):
            for _ in range(times):
                assert server.call("not-a-key", "GET", "/inputs")[0] == 401
        scraped = []
        for port in ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                scraped.append(parse(r.read().decode()))
    finally:
        for server in servers:
            server.stop()
    refused = ("visionloop_http_requests_total", (("method", "GET"), ("route", "/v2/inputs"), ("status", "401")))
    assert [s[refused] for s in scraped] == [3, 1]
    queued = ("visionloop_training_jobs", (("state", "queued"),))
    assert scraped[0][queued] == scraped[1][queued] == 0


def test_settings_never_print_the_token(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISIONLOOP_METRICS", "token")
    monkeypatch.setenv("VISIONLOOP_METRICS_TOKEN", TOKEN)
    with pytest.raises(SystemExit):
        main(["settings", "--data-dir", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert TOKEN not in out and "VISIONLOOP_METRICS_TOKEN=(set, not shown)\t(environment" in out, out


def test_index_sizes_are_counted_once_a_minute_for_the_largest_apps(api: Api, other_api: Api, core: VisionLoop,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The count joins every input to the embeddings: a scrape every few seconds must not repeat it,
    and a server with many apps shows only its largest indexes (bounded label values)."""
    from sqlalchemy import event

    from visionloop.services.monitoring import figures

    ok(api.post("/inputs", {"inputs": [{"id": n, "data": {"image": {"base64": b64(photo(n))}}}
                                       for n in ("chelsea", "coffee")]}))
    ok(other_api.post("/inputs", {"inputs": [{"id": "rocket", "data": {"image": {"base64": b64(photo("rocket"))}}}]}))
    monkeypatch.setattr(figures, "INDEX_SIZES_SHOWN", 1)
    counts: list[str] = []
    listener = lambda *args: counts.append(args[2]) if "count" in args[2].lower() else None  # noqa: E731
    event.listen(core.db.engine, "before_cursor_execute", listener)
    try:
        first = core.monitoring.index_sizes()
        again = core.monitoring.index_sizes()
    finally:
        event.remove(core.db.engine, "before_cursor_execute", listener)
    assert first == again == {api.app_id: 2} and len(counts) == 1
