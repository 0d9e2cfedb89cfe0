"""The operator console over HTTP: sign-in and its cookie, CSRF, scopes, one app per key, the
versions page and its buttons, the feedback log, images, probes; bad input answers a page, never a 500."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from tests.conftest import make_api
from tests.console.support import GENERAL, charts_of, form_token, page_token, sign_in, trained_versions
from tests.helpers import Api, b64, png_bytes
from visionloop import status
from visionloop.core import VisionLoop
from visionloop.store.tables import ModelVersion


@pytest.fixture
def browser(client: TestClient) -> TestClient:
    """A second client on the same app: its own cookie jar, like a second browser."""
    return TestClient(client.app, raise_server_exceptions=False)


def test_signing_in_sets_an_httponly_strict_expiring_cookie_without_the_key(client: TestClient, api: Api) -> None:
    token = form_token(client.get("/console/login").text)
    r = client.post("/console/login", data={"api_key": api.key, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("visionloop_session="))
    flags = {f.strip().split("=")[0].lower(): f.strip() for f in cookie.split(";")[1:]}
    assert "httponly" in flags and flags["samesite"].lower() == "samesite=strict"
    assert flags["max-age"] == "Max-Age=43200" and flags["path"] == "Path=/" and "secure" not in flags  # plain http
    assert api.key not in cookie
    home = client.get("/console")
    assert home.status_code == 200 and api.app_id in home.text
    assert home.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in home.headers[
        "content-security-policy"] and home.headers["cache-control"] == "no-store"


def test_behind_a_proxy_every_link_and_redirect_carries_the_public_prefix_and_the_cookie_is_secure(
        core: VisionLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    """VISIONLOOP_PUBLIC_BASE_URL=https://host/vl: the proxy strips /vl, the pages' links, scripts and
    redirects put it back; an https base URL makes the cookie Secure even if the proxy speaks http."""
    import dataclasses

    from visionloop.http.app import create_app

    monkeypatch.setattr(core, "settings", dataclasses.replace(core.settings,
                                                              public_base_url="https://vision.example.com/vl"))
    core.apps.create_app("proxied")
    _, key = core.apps.create_key("proxied")
    with TestClient(create_app(core.settings, core), raise_server_exceptions=False) as plain:  # proxy to us: http
        r = plain.get("/console/models", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/vl/console/login?next=%2Fconsole%2Fmodels"
        r = plain.get("/console/login")
        login_cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("visionloop_login="))
        assert "secure" in login_cookie.lower()  # the browser speaks https to the proxy
        assert 'action="/vl/console/login"' in r.text
        assert 'src="/vl/static/vendor/htmx.org-2.0.11/htmx.min.js"' in r.text
    with TestClient(create_app(core.settings, core), base_url="https://testserver",
                    raise_server_exceptions=False) as tls:
        token = form_token(tls.get("/console/login").text)
        r = tls.post("/console/login", data={"api_key": str(key), "csrf_token": token}, follow_redirects=False)
        assert r.headers["location"] == "/vl/console"
        cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("visionloop_session="))
        assert "secure" in cookie.lower()
        page = tls.get(f"/console/models/{GENERAL}").text
        refs = re.findall(r"""(?:src|href|action|hx-get|hx-post)=["'](/[^"']*)["']""", page)
        assert refs and all(ref.startswith("/vl/") for ref in refs), refs


def test_a_wrong_or_missing_key_is_refused_on_the_sign_in_page(client: TestClient, api: Api) -> None:
    token = form_token(client.get("/console/login").text)
    for key, words in (("not-a-key", "no app has this API key"), ("  ", "enter an API key")):
        r = client.post("/console/login", data={"api_key": key, "csrf_token": token}, follow_redirects=False)
        assert r.status_code == 401 and words in r.text and "visionloop_session" not in r.headers.get("set-cookie", "")
        token = form_token(r.text)
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_a_sign_in_form_without_this_browsers_token_is_refused(client: TestClient, browser: TestClient,
                                                               api: Api) -> None:
    """A page elsewhere cannot sign a victim's browser in to the attacker's app (login CSRF)."""
    token = form_token(client.get("/console/login").text)  # another browser's token
    for data in ({"api_key": api.key}, {"api_key": api.key, "csrf_token": token}):
        r = browser.post("/console/login", data=data, follow_redirects=False)
        assert r.status_code == 403 and "CSRF" in r.text
    assert browser.get("/console", follow_redirects=False).status_code == 303


def test_a_page_without_a_session_sends_to_sign_in_and_back(client: TestClient, api: Api) -> None:
    r = client.get("/console/feedback?end_user_id=u1", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login?next=%2Fconsole%2Ffeedback%3Fend_user_id%3Du1"
    page = client.get(r.headers["location"]).text
    assert 'name="next" value="/console/feedback?end_user_id=u1"' in page
    r = client.post("/console/login", data={"api_key": api.key, "csrf_token": form_token(page),
                                            "next": "/console/feedback?end_user_id=u1"}, follow_redirects=False)
    assert r.headers["location"] == "/console/feedback?end_user_id=u1"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/console", "/console\\..\\x"])
def test_sign_in_never_redirects_off_the_console(client: TestClient, api: Api, target: str) -> None:
    token = form_token(client.get("/console/login").text)
    r = client.post("/console/login", data={"api_key": api.key, "csrf_token": token, "next": target},
                    follow_redirects=False)
    assert r.headers["location"] == "/console"


def test_forms_without_the_sessions_csrf_token_change_nothing(client: TestClient, browser: TestClient, api: Api,
                                                             core: VisionLoop) -> None:
    old, new = trained_versions(core, api.app_id, GENERAL, 2)
    sign_in(client, api.key)
    sign_in(browser, api.key)
    url = f"/console/models/{GENERAL}/versions/{old}/activate"
    for data in ({}, {"csrf_token": "0" * 64}, {"csrf_token": page_token(browser)}):  # another session's token
        r = client.post(url, data=data, follow_redirects=False)
        assert r.status_code == 403 and "CSRF" in r.text, r.text
    assert client.post("/console/logout", data={}, follow_redirects=False).status_code == 403
    assert api.get(f"/models/{GENERAL}").json()["model"]["model_version"]["id"] == new


def test_rolling_back_from_the_console_is_what_the_api_then_answers(client: TestClient, api: Api,
                                                                    core: VisionLoop) -> None:
    old, new = trained_versions(core, api.app_id, GENERAL, 2)
    sign_in(client, api.key)
    page = client.get(f"/console/models/{GENERAL}").text
    assert re.search(rf'<tr id="v-{new}" class="active">\s*<td><span class="badge active-marker">active', page)
    assert f'href="/console/models/{GENERAL}/versions/{old}/activate">Roll back to this' in page
    confirm = client.get(f"/console/models/{GENERAL}/versions/{old}/activate")
    assert confirm.status_code == 200 and "Roll back" in confirm.text
    r = client.post(f"/console/models/{GENERAL}/versions/{old}/activate",
                    data={"csrf_token": form_token(confirm.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert api.get(f"/models/{GENERAL}").json()["model"]["model_version"]["id"] == old
    after = client.get(r.headers["location"]).text
    assert re.search(rf'<tr id="v-{old}" class="active">', after)
    audit = after[after.index('id="audit"'):]
    assert "activate" in audit and old in audit and f"was {new}" in audit


def test_train_now_queues_a_version_and_logs_it(client: TestClient, api: Api) -> None:
    sign_in(client, api.key)
    r = client.post(f"/console/models/{GENERAL}/train", data={"csrf_token": page_token(client)},
                    follow_redirects=False)
    assert r.status_code == 303
    versions = api.get(f"/models/{GENERAL}/versions").json()["model_versions"]
    assert versions[0]["status"]["code"] == 21117  # too little feedback to learn from: told, not promoted
    page = client.get(r.headers["location"]).text
    assert f'id="v-{versions[0]["id"]}"' in page and "train" in page[page.index('id="audit"'):]
    assert 'hx-trigger="every 1s"' not in page  # nothing in training: nothing polls


def test_a_model_page_polls_the_progress_of_a_version_in_training(client: TestClient, api: Api,
                                                                  core: VisionLoop) -> None:
    from sqlalchemy import update

    core.learning.submit = lambda app_id, version_id: None  # a worker that has not started on it yet
    sign_in(client, api.key)
    r = client.post(f"/console/models/{GENERAL}/train", data={"csrf_token": page_token(client)},
                    headers={"HX-Request": "true"})  # what htmx posts: the answer is the progress, not a page
    assert r.status_code == 200 and r.headers["hx-trigger"] == "versions-changed"
    vid = re.search(r'id="progress-([^"]+)"', r.text).group(1)
    poll = f"/console/models/{GENERAL}/versions/{vid}/progress"
    assert f'hx-get="{poll}"' in r.text and 'hx-trigger="every 1s"' in r.text and "Model is queued" in r.text
    assert f'id="progress-{vid}"' in client.get(f"/console/models/{GENERAL}").text  # a reload keeps polling it
    with core.db.transaction() as s:
        s.execute(update(ModelVersion).where(ModelVersion.id == vid).values(
            status_code=status.MODEL_TRAINING, progress={"stage": "training on 12 labels", "fraction": 0.5}))
    r = client.get(poll)
    assert '<progress max="1" value="0.5">50%</progress>' in r.text and "training on 12 labels" in r.text
    assert "hx-trigger" not in r.headers and 'hx-trigger="every 1s"' in r.text
    with core.db.transaction() as s:  # as it was before the worker claimed it, so that run() trains it here
        s.execute(update(ModelVersion).where(ModelVersion.id == vid)
                  .values(status_code=status.MODEL_QUEUED_FOR_TRAINING))
    core.learning.run(vid)
    r = client.get(poll)
    assert r.headers["hx-trigger"] == "versions-changed" and "hx-get" not in r.text  # done: polling stops
    assert "insufficient" in r.text.lower()
    table = client.get(f"/console/models/{GENERAL}/versions").text
    assert table.startswith("<div id=\"model-state\"") and f'id="v-{vid}"' in table and 'id="audit"' in table


def test_a_poll_after_the_session_ended_sends_the_whole_page_to_sign_in(client: TestClient, api: Api) -> None:
    r = client.get(f"/console/models/{GENERAL}/versions", follow_redirects=False, headers={
        "HX-Request": "true", "HX-Current-URL": f"http://testserver/console/models/{GENERAL}?done=train"})
    assert r.status_code == 204 and r.headers["hx-redirect"] == (  # back to the page, not to the fragment
        f"/console/login?next=%2Fconsole%2Fmodels%2F{GENERAL}%3Fdone%3Dtrain")


def test_training_records_each_stage_on_the_version_and_clears_it_when_done(api: Api, core: VisionLoop) -> None:
    seen = []

    def watch(message: str) -> None:
        with core.db.session() as s:
            version = s.scalars(select(ModelVersion).where(ModelVersion.status_code == status.MODEL_TRAINING)).one()
            seen.append((message, version.progress))

    for i in range(4):
        api.add_image(f"p{i}")
        _judge(api, f"p{i}", "u1", i % 2 == 0)
    version = core.learning.request(api.app_id, GENERAL, progress=watch)
    assert seen and all(p == {"stage": m, "fraction": round((i + 1) / 6, 3)} for i, (m, p) in enumerate(seen))
    with core.db.session() as s:
        assert s.get(ModelVersion, version.id).progress is None


def test_a_page_the_key_may_not_use_names_the_missing_scope(client: TestClient, browser: TestClient,
                                                            core: VisionLoop) -> None:
    reader = make_api(core, client, "app-a", ("feedback_admin",))
    sign_in(client, reader.key)
    r = client.get("/console/models")
    assert r.status_code == 403 and "needs the &#39;models&#39; scope, which this API key lacks" in r.text
    assert client.get(f"/console/models/{GENERAL}").status_code == 403
    home = client.get("/console").text.replace("&#39;", "'")
    assert "Models need the 'models' scope" in home
    assert "Models <small>(needs 'models')</small>" in home and 'href="/console/models"' not in home
    assert client.get("/console/feedback").status_code == 200

    trainer = make_api(core, client, "app-a", ("models",))
    sign_in(browser, trainer.key)
    r = browser.get("/console/feedback")
    assert r.status_code == 403 and "&#39;feedback_admin&#39; scope" in r.text


def test_another_apps_session_sees_nothing_of_this_app(client: TestClient, api: Api, other_api: Api,
                                                      core: VisionLoop) -> None:
    ours = trained_versions(core, api.app_id, GENERAL, 2)
    api.add_image("secret-cat")
    sign_in(client, other_api.key)
    page = client.get(f"/console/models/{GENERAL}").text
    assert not any(v in page for v in ours) and api.app_id not in page
    r = client.get(f"/console/models/{GENERAL}/versions/{ours[0]}/activate")
    assert r.status_code == 404 and "has no version" in r.text
    r = client.post(f"/console/models/{GENERAL}/versions/{ours[0]}/activate",
                    data={"csrf_token": page_token(client)})
    assert r.status_code == 404
    assert client.get("/v2/inputs/secret-cat/image").status_code == 404
    assert api.get(f"/models/{GENERAL}").json()["model"]["model_version"]["id"] == ours[1]


def test_the_feedback_log_filters_marks_unlinked_events_and_shows_images(client: TestClient, api: Api) -> None:
    api.add_image("cat")
    for user, output in (("alice", "no-such-output"), ("bob", "nor-this")):
        r = api.post(f"/models/{GENERAL}/feedback", {"input": {"id": "cat", "data": {"concepts": [
            {"id": "tabby", "value": True}]}, "feedback_info": {"event_type": "annotation", "output_id": output,
                                                               "end_user_id": user, "session_id": "s1"}}})
        assert r.status_code == 200, r.text
    sign_in(client, api.key)
    page = client.get("/console/feedback?end_user_id=alice").text
    rows = re.findall(r'<tr class="event[^"]*">', page)
    assert len(rows) == 1 and "unlinked" in rows[0] and 'class="badge unlinked-marker"' in page
    assert "tabby ✓" in page and "bob" not in page
    thumb = re.search(r'<img class="thumb" alt="input cat" src="([^"]+)"', page).group(1)
    image = client.get(thumb)  # the stored input an unlinked event names
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
    assert client.get(thumb, headers={"If-None-Match": image.headers["etag"]}).status_code == 304
    assert client.get("/v2/inputs/cat/image").status_code == 200  # the session is a key's for images
    both = client.get("/console/feedback?session_id=s1&event_type=annotation").text
    assert len(re.findall(r'<tr class="event', both)) == 2


def test_htmx_gets_the_filtered_selection_alone_and_a_history_restore_the_page(client: TestClient,
                                                                                api: Api) -> None:
    for i, user in enumerate(("alice", "bob", "alice")):
        _judge(api, f"h{i}", user, True)
    sign_in(client, api.key)
    r = client.get("/console/feedback", params={"end_user_id": "alice"}, headers={"HX-Request": "true"})
    assert r.text.lstrip().startswith('<div id="log">'), r.text[:200]
    assert r.text.count('<tr class="event') == 2 and "<html" not in r.text
    assert 'href="/console/feedback/export?end_user_id=alice&amp;format=jsonl"' in r.text
    restore = client.get("/console/feedback", params={"end_user_id": "alice"},
                         headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert restore.text.startswith("<!doctype html>")


def test_region_feedback_is_drawn_on_the_image_it_judged_in_its_verdicts_colour(client: TestClient,
                                                                                api: Api) -> None:
    face = "a403429f2ddf4b49b307e318f00e528b"
    out = api.post(f"/models/{face}/outputs", {"inputs": [{"data": {"image": {
        "base64": b64(png_bytes((255, 255, 255), (100, 100)))}}}]}).json()["outputs"][0]
    r = api.post(f"/models/{face}/feedback", {"input": {"id": out["input"]["id"], "data": {"regions": [
        {"region_info": {"bounding_box": {"top_row": 0.2, "left_col": 0.2, "bottom_row": 0.8, "right_col": 0.8},
                         "feedback": "not_detected"}, "data": {"concepts": [{"id": "face", "value": True}]}}]},
        "feedback_info": {"event_type": "annotation", "output_id": out["id"], "end_user_id": "u1"}}})
    assert r.status_code == 200, r.text
    sign_in(client, api.key)
    page = client.get("/console/feedback").text
    assert "not_detected [0.2, 0.2, 0.8, 0.8]" in page
    thumb = re.search(r'<img class="thumb" alt="[^"]*" src="([^"]+)"', page).group(1)
    image = Image.open(io.BytesIO(client.get(thumb).content)).convert("RGB")
    assert image.size == (100, 100)
    r_, g, b = image.getpixel((20, 50))  # the box's left edge, in not_detected's blue
    assert b > 150 and r_ < 120, (r_, g, b)
    assert min(image.getpixel((50, 50))) > 230  # inside the box the image is untouched


def test_names_metadata_and_end_user_ids_are_rendered_inert(client: TestClient, api: Api) -> None:
    evil = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    r = api.post(f"/models/{GENERAL}/feedback", {"input": {"id": "x", "data": {"concepts": [
        {"id": "c1", "name": evil, "value": True}]}, "feedback_info": {
        "event_type": "annotation", "output_id": "o", "end_user_id": evil, "session_id": evil}}})
    assert r.status_code == 200, r.text
    sign_in(client, api.key)
    page = client.get("/console/feedback").text
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    r = client.get("/console/feedback", params={"end_user_id": evil})
    assert r.status_code == 200 and "<script>" not in r.text
    made = api.post("/models", {"model": {"id": "evil-model", "name": evil, "output_info": {"data": {"concepts": [
        {"id": "c2", "name": evil}]}}}})
    assert made.status_code == 200, made.text
    for url in ("/console", "/console/models", "/console/models/evil-model", "/console/review", "/console/end-users"):
        r = client.get(url)
        assert r.status_code == 200 and "<script>" not in r.text and "<img src=x" not in r.text, url
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get("/console/models").text


@pytest.mark.parametrize(("url", "code", "words"), [
    ("/console/feedback?created_after=yesterday", 400, "created_after: must be an ISO 8601 time"),
    ("/console/feedback?event_type=telepathy", 400, "event_type"),
    ("/console/feedback?page=0", 400, "page: must be a whole number"),
    ("/console/feedback?model_id=no-such-model", 404, "does not exist"),
    ("/console/feedback/no-such-event/image", 404, "has no image stored in this app"),
    ("/console/models/no-such-model", 404, "does not exist"),
    (f"/console/models/{GENERAL}/versions/nope", 404, "has no version"),
    (f"/console/models/{GENERAL}/versions/nope/activate", 404, "has no version"),
])
def test_bad_console_requests_answer_a_page_naming_the_problem(client: TestClient, api: Api, url: str, code: int,
                                                              words: str) -> None:
    sign_in(client, api.key)
    r = client.get(url)
    assert r.status_code == code and r.headers["content-type"].startswith("text/html"), r.text
    assert words in r.text.replace("&#39;", "'"), r.text


def test_bad_form_posts_are_refused_not_crashed(client: TestClient, api: Api, core: VisionLoop) -> None:
    old, _ = trained_versions(core, api.app_id, GENERAL, 2)
    sign_in(client, api.key)
    url = f"/console/models/{GENERAL}/versions/{old}/activate"
    for kwargs, code in (({"json": {"csrf_token": "x"}}, 400),
                         ({"content": b"csrf_token=%ff%fe", "headers": {
                             "content-type": "application/x-www-form-urlencoded"}}, 400),
                         ({"content": b"a=1&" * 40_000, "headers": {
                             "content-type": "application/x-www-form-urlencoded"}}, 413)):
        r = client.post(url, **kwargs)
        assert r.status_code == code, r.text
    assert client.post("/console/login", json={"api_key": api.key}).status_code == 400
    untrained = api.post(f"/models/{GENERAL}/versions", {}).json()["model"]["model_version"]["id"]  # too little data
    r = client.post(f"/console/models/{GENERAL}/versions/{untrained}/activate", data={"csrf_token": page_token(client)})
    assert r.status_code == 400 and "is not trained" in r.text


def test_signing_out_or_revoking_the_key_ends_the_session(client: TestClient, browser: TestClient, api: Api,
                                                          core: VisionLoop) -> None:
    sign_in(client, api.key)
    stolen = client.cookies["visionloop_session"]
    r = client.post("/console/logout", data={"csrf_token": page_token(client)}, follow_redirects=False)
    assert r.status_code == 303 and 'visionloop_session=""' in r.headers["set-cookie"]
    assert client.get("/console", follow_redirects=False).status_code == 303
    replayed = browser.get("/console", headers={"Cookie": f"visionloop_session={stolen}"}, follow_redirects=False)
    assert replayed.status_code == 303  # a copy of the cookie ends with the session
    sign_in(browser, api.key)
    core.apps.revoke_key(core.apps.authenticate(api.key).key_id)
    assert browser.get("/console", follow_redirects=False).status_code == 303


def test_the_quality_page_shows_champion_beside_challenger_the_concepts_and_plots(client: TestClient, api: Api,
                                                                                  core: VisionLoop) -> None:
    vid = trained_versions(core, api.app_id, GENERAL, 1)[0]
    with core.db.transaction() as s:
        s.get(ModelVersion, vid).metrics = {"holdout": {
            "champion": {"macro_auc": {"value": 0.61, "low": 0.5, "high": 0.7, "n": 40, "too_few": False}},
            "challenger": {"macro_auc": {"value": 0.83, "low": 0.75, "high": 0.9, "n": 40, "too_few": False}}}}
    out = api.post(f"/models/{GENERAL}/versions/{vid}/outputs", {"inputs": [{"data": {"image": {
        "base64": b64(png_bytes((200, 30, 30), (64, 64)))}}}]}).json()["outputs"][0]
    for user, present in (("u1", True), ("u2", False)):
        api.post(f"/models/{GENERAL}/versions/{vid}/feedback", {"input": {"id": out["input"]["id"], "data": {
            "concepts": [{"id": "tabby", "value": present}]}, "feedback_info": {
            "event_type": "annotation", "output_id": out["id"], "end_user_id": user}}})
    sign_in(client, api.key)
    r = client.get(f"/console/models/{GENERAL}/versions/{vid}")
    assert r.status_code == 200 and "Quality over time" in r.text and vid in r.text
    holdout = r.text[r.text.index('class="holdout"'):]
    assert re.search(r"<td>macro_auc</td><td>0\.610 <small class=\"muted\">\[0\.500, 0\.700\]</small> <small "
                     r"class=\"muted\">n=40</small></td><td>0\.830", holdout), holdout[:600]
    concepts = r.text[r.text.index('id="concepts"'):]
    assert "<td>tabby</td>" in concepts and "<th>roc_auc</th>" in concepts, concepts[:800]


def test_the_probes_answer_without_a_key_and_say_nothing_else(client: TestClient, core: VisionLoop) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    deadline = time.monotonic() + 120
    while (r := client.get("/readyz")).status_code != 200 and time.monotonic() < deadline:
        assert r.status_code == 503 and r.json() == {"status": "unavailable", "reason": "models loading"}
        time.sleep(0.2)
    assert r.json() == {"status": "ready"} and core.runtime.loaded


def test_erasing_an_end_user_shows_the_counts_first_and_keeps_no_id_in_the_audit(client: TestClient,
                                                                                 api: Api) -> None:
    for i, user in enumerate(("alice", "alice", "bob")):
        api.post(f"/models/{GENERAL}/feedback", {"input": {"id": f"in{i}", "data": {"concepts": [
            {"id": "tabby", "value": True}]}, "feedback_info": {"event_type": "annotation", "output_id": f"o{i}",
                                                               "end_user_id": user}}})
    sign_in(client, api.key)
    listing = client.get("/console/end-users").text
    assert re.search(r">alice</a></td>\s*<td class=\"num\">2</td>", listing) and ">bob</a>" in listing
    confirm = client.get("/console/end-users/erase?end_user_id=alice")
    assert confirm.status_code == 200 and "2 annotation events" in confirm.text
    assert api.get("/feedback?end_user_id=alice").json()["feedback"]  # nothing erased by looking
    assert client.post("/console/end-users/erase", data={"end_user_id": "alice"}).status_code == 403  # no token
    r = client.post("/console/end-users/erase", data={"end_user_id": "alice", "csrf_token": form_token(confirm.text)},
                    follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/end-users?erased=2"
    assert api.get("/feedback?end_user_id=alice").json()["feedback"] == []
    assert len(api.get("/feedback?end_user_id=bob").json()["feedback"]) == 1
    after = client.get(r.headers["location"]).text
    audit = after[after.index('id="audit"'):]
    assert "2 feedback events of one end user" in audit and "alice" not in after
    assert client.post("/console/end-users/erase", data={"csrf_token": page_token(client)}).status_code == 400


def _judge(api: Api, input_id: str, user: str, present: bool) -> None:
    r = api.post(f"/models/{GENERAL}/feedback", {"input": {"id": input_id, "data": {"concepts": [
        {"id": "tabby", "value": present}]}, "feedback_info": {"event_type": "annotation", "output_id": "o",
                                                              "end_user_id": user}}})
    assert r.status_code == 200, r.text


def test_the_review_queue_shows_disputes_and_stores_the_operators_label(client: TestClient, api: Api,
                                                                        core: VisionLoop) -> None:
    api.add_image("split")
    api.add_image("agreed", (0, 0, 255))
    for user, present in (("u1", True), ("u2", False), ("u3", True), ("u4", False)):
        _judge(api, "split", user, present)
        _judge(api, "agreed", user, True)
    sign_in(client, api.key)
    page = client.get("/console/review").text
    disputes = page[page.index('id="queue"'):page.index("<h2>Where the active version")]
    items = re.findall(r'<tr class="item"', disputes)
    assert len(items) == 1 and "<code>split</code>" in disputes and "2 / 2" in disputes
    assert "agreed</code>" not in disputes
    r = client.post("/console/review/label", data={"csrf_token": form_token(page), "input_id": "split",
                                                    "concept_id": "tabby", "verdict": "absent"}, follow_redirects=False)
    assert r.status_code == 303
    concepts = api.get("/inputs/split").json()["input"]["data"]["concepts"]
    assert [(c["id"], c["value"]) for c in concepts] == [("tabby", 0.0)]  # the app's annotation: a trusted judge
    assert '<td class="label">absent</td>' in client.get(r.headers["location"]).text
    for data, code in (({"input_id": "split", "concept_id": "tabby", "verdict": "maybe"}, 400),
                       ({"input_id": "nope", "concept_id": "tabby", "verdict": "present"}, 404),
                       ({"input_id": "", "concept_id": "", "verdict": "present"}, 400)):
        assert client.post("/console/review/label", data={"csrf_token": page_token(client), **data}
                           ).status_code == code, data


def test_reviewing_without_the_inputs_scope_shows_the_queue_but_no_labelling(client: TestClient, api: Api,
                                                                             core: VisionLoop) -> None:
    api.add_image("split")
    _judge(api, "split", "u1", True)
    _judge(api, "split", "u2", False)
    reader = make_api(core, client, api.app_id, ("feedback_admin",))
    sign_in(client, reader.key)
    page = client.get("/console/review").text.replace("&#39;", "'")
    assert "<code>split</code>" in page and "Labelling needs the 'inputs' scope" in page and "/review/label" not in page
    r = client.post("/console/review/label", data={"csrf_token": page_token(client), "input_id": "split",
                                                    "concept_id": "tabby", "verdict": "present"})
    assert r.status_code == 403 and "'inputs' scope" in r.text.replace("&#39;", "'")
    assert api.get("/inputs/split").json()["input"]["data"]["concepts"] == []


def test_the_search_page_shows_click_figures_and_where_users_click(client: TestClient, api: Api) -> None:
    for i in range(3):
        api.add_image(f"im{i}", (80 * i, 10, 10))
    search = api.post("/searches", {"query": {"ands": [{"output": {"input": {"data": {"image": {
        "base64": b64(png_bytes((0, 10, 10)))}}}}}]}}).json()
    clicked = search["hits"][1]["input"]["id"]
    r = api.post("/searches/feedback", {"input": {"id": clicked, "feedback_info": {
        "event_type": "search_click", "search_id": search["id"], "end_user_id": "u1"}}})
    assert r.status_code == 200, r.text
    assert api.get("/searches/metrics").json()["search_metrics"]["click_positions"] == {"2": 1}
    api.post("/searches", {"query": {"ands": [{"output": {"input": {"data": {"image": {  # the same query again
        "base64": b64(png_bytes((0, 10, 10)))}}}}}]}})
    sign_in(client, api.key)
    page = client.get("/console/search")
    assert page.status_code == 200 and "By query kind" in page.text
    plotted = charts_of(page.text)
    assert plotted["chart-clicks"]["x"] == [2.0] and plotted["chart-clicks"]["series"][0]["values"] == [1.0]
    assert {s["label"] for s in plotted["chart-search-days"]["series"]} == {"CTR (all)", "MRR (all)", "CTR (visual)",
                                                                          "MRR (visual)"}
    assert re.search(r"<td>visual</td><td class=\"num\">2</td><td class=\"num\">1</td>", page.text), page.text
    top = page.text[page.text.index('id="top-queries"'):]  # one query asked twice, one click
    assert re.search(rf"<td class=\"num\">2</td><td class=\"num\">1</td>\s*<td><code>{clicked}</code> \(1\)", top), top


def test_the_search_page_needs_the_search_scope(client: TestClient, api: Api, core: VisionLoop) -> None:
    sign_in(client, make_api(core, client, api.app_id, ("models",)).key)
    r = client.get("/console/search")
    assert r.status_code == 403 and "'search' scope" in r.text.replace("&#39;", "'")


def test_the_feedback_log_exports_its_selection_as_json_lines(client: TestClient, api: Api) -> None:
    for user in ("alice", "bob"):
        _judge(api, f"in-{user}", user, True)
    sign_in(client, api.key)
    page = client.get("/console/feedback?end_user_id=alice").text
    link = re.search(r'<a href="([^"]+)" id="export">', page).group(1).replace("&amp;", "&")
    assert link == "/console/feedback/export?end_user_id=alice&format=jsonl"
    r = client.get(link)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in r.headers["content-disposition"]
    records = [json.loads(line) for line in r.text.splitlines()]
    assert [x["end_user_id"] for x in records] == ["alice"] and records == api.get(
        "/feedback?end_user_id=alice").json()["feedback"]
    assert client.get("/console/feedback/export?created_before=soon").status_code == 400
    assert client.get("/console/feedback/export?format=xml").status_code == 400
    parquet = client.get(link.replace("format=jsonl", "format=parquet"))
    try:
        import pyarrow.parquet as pq
    except ImportError:  # an optional extra: the page says what to install
        assert parquet.status_code == 400 and "pyarrow" in parquet.text
    else:
        assert parquet.status_code == 200 and pq.read_table(io.BytesIO(parquet.content)).num_rows == 1


def test_every_page_loads_only_from_this_server(client: TestClient, api: Api, core: VisionLoop) -> None:
    """No CDN, font or script elsewhere: every src and href is a path here (images under the
    server's own base URL); the only scripts are the vendored htmx and uPlot and the console's
    own, and the Content-Security-Policy allows nothing else (no inline script, no eval)."""
    vid = trained_versions(core, api.app_id, GENERAL, 1)[0]
    api.add_image("split")
    _judge(api, "split", "u1", True)
    _judge(api, "split", "u2", False)
    sign_in(client, api.key)
    scripts = {' src="/static/vendor/htmx.org-2.0.11/htmx.min.js" defer', ' src="/static/console/console.js" defer',
               ' src="/static/vendor/uplot-1.6.32/uPlot.iife.min.js" defer'}
    for script in scripts:
        assert client.get(script.split('"')[1]).status_code == 200, script
    pages = ["/console", "/console/models", f"/console/models/{GENERAL}", f"/console/models/{GENERAL}/versions/{vid}",
             f"/console/models/{GENERAL}/versions/{vid}/activate", "/console/feedback", "/console/end-users",
             "/console/end-users/erase?end_user_id=u1", "/console/review", "/console/search"]
    for url in pages:
        r = client.get(url)
        assert r.status_code == 200, (url, r.text)
        assert r.headers["content-security-policy"] == (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        assert set(re.findall(r"<script([^>]*)>", r.text)) <= {' type="application/json"', *scripts}, url
        for ref in re.findall(r"""(?:src|href|action)=["']([^"']+)["']""", r.text):
            assert ref.startswith(("/", "http://testserver/", "data:image/png;base64,", "data:,")), (url, ref)
    overview = client.get("/console").text
    assert '<strong id="disputed">1</strong>' in overview and '<strong id="disagreement-rate">100%</strong>' in overview
    assert client.get("/static/console/console.css").status_code == 200


def test_a_session_started_on_one_process_holds_on_another_until_signed_out(client: TestClient, api: Api,
                                                                            core: VisionLoop) -> None:
    """Two API processes on one database: the signing secret and the sign-ins are in the database."""
    from visionloop.http.app import create_app

    other = VisionLoop(core.settings, core.runtime)
    try:
        with TestClient(create_app(other.settings, other), raise_server_exceptions=False) as second:
            sign_in(client, api.key)
            second.cookies.set("visionloop_session", client.cookies["visionloop_session"])
            assert second.get("/console", follow_redirects=False).status_code == 200
            token = page_token(second)
            assert second.post("/console/logout", data={"csrf_token": token}, follow_redirects=False
                               ).status_code == 303
            assert client.get("/console", follow_redirects=False).status_code == 303
    finally:
        other.close()


def test_the_quality_page_plots_calibration_once_both_labels_are_seen(client: TestClient, api: Api,
                                                                      core: VisionLoop) -> None:
    outs = [api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(png_bytes(
        (40 * i, 90, 200 - 40 * i), (48, 48)))}}}]}).json()["outputs"][0] for i in range(4)]
    for i, out in enumerate(outs):
        concept = out["data"]["concepts"][0]["id"]
        api.post(f"/models/{GENERAL}/feedback", {"input": {"id": out["input"]["id"], "data": {"concepts": [
            {"id": concept, "value": i % 2 == 0}]}, "feedback_info": {"event_type": "annotation",
                                                                     "output_id": out["id"], "end_user_id": "u1"}}})
    sign_in(client, api.key)
    page = client.get(f"/console/models/{GENERAL}/versions/aa9ca48295b37401f8af92ad1af0d91d").text
    calibration = charts_of(page)["chart-3"]
    assert calibration["title"] == "Calibration from feedback" and calibration["series"][0]["label"] == "calibrated"
    assert any(v is not None for v in calibration["series"][1]["values"])


def test_the_review_queue_also_offers_what_the_model_was_least_sure_of(client: TestClient, api: Api,
                                                                       core: VisionLoop) -> None:
    from sqlalchemy import delete

    from visionloop.store.tables import InputConceptScore

    api.add_image("blurry")
    with core.db.transaction() as s:  # what the general model would say of a blurry cat
        s.execute(delete(InputConceptScore).where(InputConceptScore.app_id == api.app_id))
        s.add(InputConceptScore(app_id=api.app_id, input_id="blurry", concept_id="n02123045", value=0.52))
    sign_in(client, api.key)
    page = client.get("/console/review").text
    unsure = page[page.index('id="unsure"'):]
    assert "<code>blurry</code>" in unsure and "tabby cat" in unsure and "0.52" in unsure
    r = client.post("/console/review/label", data={"csrf_token": form_token(page), "input_id": "blurry",
                                                    "concept_id": "n02123045", "verdict": "present"})
    assert r.status_code == 200 and "n02123045" not in r.text[r.text.index("<h2>Where"):]  # labelled: off the list
    assert [c["id"] for c in api.get("/inputs/blurry").json()["input"]["data"]["concepts"]] == ["n02123045"]


def test_the_review_queue_reads_uncertainty_from_the_active_versions_heads(client: TestClient, api: Api,
                                                                         core: VisionLoop) -> None:
    """A version with learned heads scores the stored images as it predicts: a concept only it
    knows, on which it is unsure, comes to review; the base scores taken when they were added do not."""
    import numpy as np

    from visionloop.learning.heads import ConceptHeads
    from visionloop.services.training.data import features, unit_rows
    from visionloop.services.training.scoring import HEADS_KIND
    from visionloop.store.tables import Input

    for i in range(3):
        api.add_image(f"s{i}", (70 * i, 200 - 60 * i, 90))
    with core.db.session() as s:
        stored = features(s, list(s.scalars(select(Input.digest).where(Input.app_id == api.app_id))))
    rng = np.random.default_rng(0)
    X = unit_rows(rng.normal(size=(40, len(next(iter(stored.values()))))))
    heads = ConceptHeads().fit(X, (np.arange(40) % 2)[:, None].astype(float), concepts=["novel"])  # learns nothing
    view = core.models.get(api.app_id, GENERAL)
    vid = "with-heads"
    with core.db.transaction() as s:
        s.add(ModelVersion(id=vid, model_pk=view.model.pk, app_id=api.app_id, parent_id=view.version.id,
                           status_code=status.MODEL_TRAINED, artifact_digest=core.blobs.put(heads.to_bytes()),
                           params={"kind": HEADS_KIND, "concepts": [{"id": "novel", "name": "novel", "n_labels": 40}]}))
    core.models.set_active(api.app_id, view.model, vid)
    sign_in(client, api.key)
    page = client.get("/console/review").text
    unsure = page[page.index("<h2>Where"):]
    assert f"<code>{vid}</code> (trained here" in unsure, unsure[:900]
    assert re.findall(r"<td><code>(s\d)</code></td>\s*<td>novel", unsure) and "novel" in unsure


HOSTILE = ["%ff", "x" * 3000, "%E2%80%AE", "..%2F..%2Fetc", "a%2Fb", "'%20OR%201=1--", "%F0%9F%98%80", "%20"]


def test_hostile_path_and_query_values_never_break_a_page(client: TestClient, api: Api, core: VisionLoop) -> None:
    vid = trained_versions(core, api.app_id, GENERAL, 1)[0]
    sign_in(client, api.key)
    token = page_token(client)
    for value in HOSTILE:
        for url in (f"/console/models/{value}", f"/console/models/{GENERAL}/versions/{value}",
                    f"/console/models/{value}/versions/{vid}/activate", f"/console/feedback/{value}/image",
                    f"/console/feedback?model_id={value}&version_id={value}&end_user_id={value}&session_id={value}"
                    f"&created_after={value}&page={value}", f"/console/end-users/erase?end_user_id={value}",
                    f"/console/end-users?page={value}", f"/console/login?next={value}", f"/console/feedback/export?"
                    f"end_user_id={value}&format={value}", f"/v2/inputs/{value}/image?size={value}"):
            r = client.get(url)
            assert r.status_code < 500 and "Traceback" not in r.text, (url[:120], r.status_code, r.text[:300])
        posts = [(f"/console/models/{value}/train", {}), (f"/console/models/{GENERAL}/versions/{value}/activate", {}),
                 ("/console/end-users/erase", {"end_user_id": value}),
                 ("/console/review/label", {"input_id": value, "concept_id": value, "verdict": "present"})]
        for url, data in posts:
            r = client.post(url, data={"csrf_token": token, **data})
            assert r.status_code < 500 and "Traceback" not in r.text, (url[:120], r.status_code, r.text[:300])


def test_the_end_users_page_shows_who_training_trusts_less_and_why(client: TestClient, api: Api) -> None:
    """Three users agree on ten images; a fourth says the opposite every time: down-weighted."""
    for i in range(10):
        out = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(png_bytes(
            (25 * i, 255 - 25 * i, 90), (32, 32)))}}}]}).json()["outputs"][0]
        for user, present in (("ann", i % 2 == 0), ("ben", i % 2 == 0), ("cat", i % 2 == 0), ("contrarian", i % 2)):
            r = api.post(f"/models/{GENERAL}/feedback", {"input": {"id": out["input"]["id"], "data": {"concepts": [
                {"id": "tabby", "value": bool(present)}]}, "feedback_info": {
                "event_type": "annotation", "output_id": out["id"], "end_user_id": user}}})
            assert r.status_code == 200, r.text
    sign_in(client, api.key)
    page = client.get("/console/end-users").text
    table = page[page.index('id="reliability"'):]
    down = re.findall(r'<tr class="down">\s*<td>([^<]+)</td>', table)
    assert down == ["contrarian"], table[:1500]
    assert "often contradict" in table and "<td>ann</td>" in table
    r = client.get("/console/end-users?model_id=a403429f2ddf4b49b307e318f00e528b")  # a detector
    assert r.status_code == 400 and "not a concept model" in r.text


def _unlinked(api: Api, input_id: str | None = None, image: dict | None = None) -> None:
    data = {"concepts": [{"id": "tabby", "value": True}], **({"image": image} if image else {})}
    r = api.post(f"/models/{GENERAL}/feedback", {"input": {**({"id": input_id} if input_id else {}), "data": data,
                                                           "feedback_info": {"event_type": "annotation",
                                                                             "output_id": "no-such-output",
                                                                             "end_user_id": "alice"}}})
    assert r.status_code == 200, r.text


def _thumbs(client: TestClient) -> list[str]:
    return re.findall(r'<img class="thumb" alt="[^"]*" src="([^"]+)"', client.get("/console/feedback").text)


def test_an_unlinked_events_stored_input_image_needs_the_inputs_scope(client: TestClient, browser: TestClient,
                                                                      api: Api, core: VisionLoop) -> None:
    """The feedback log shows it as GET /v2/inputs/{id}/image would: not to a key without 'inputs'."""
    api.add_image("cat")
    _unlinked(api, "cat")
    sign_in(client, make_api(core, client, "app-a", ("feedback_admin",)).key)
    thumb, = _thumbs(client)
    r = client.get(thumb)
    assert r.status_code == 403 and "&#39;inputs&#39; scope" in r.text
    sign_in(browser, make_api(core, browser, "app-a", ("feedback_admin", "inputs")).key)
    assert browser.get(thumb).status_code == 200


def test_unlinked_bytes_show_an_image_only_this_app_stores(client: TestClient, api: Api, other_api: Api) -> None:
    """A digest the sender computed from its own bytes must not tell whether another app stored them."""
    other_api.add_image("theirs", (0, 0, 255))
    _unlinked(api, image={"base64": b64(png_bytes((0, 0, 255)))})
    api.add_image("ours", (0, 255, 0))
    _unlinked(api, image={"base64": b64(png_bytes((0, 255, 0)))})
    sign_in(client, api.key)
    events = {e["data"]["image"]["base64_sha256"]: e["id"] for e in api.get("/feedback").json()["feedback"]}
    assert len(events) == 2
    answers = {digest: client.get(f"/console/feedback/{event_id}/image").status_code
               for digest, event_id in events.items()}
    assert sorted(answers.values()) == [200, 404], answers


def test_a_form_field_with_a_nul_is_refused_naming_it(client: TestClient, api: Api) -> None:
    sign_in(client, api.key)
    r = client.post("/console/end-users/erase", data={"csrf_token": page_token(client), "end_user_id": "a\x00b"})
    assert r.status_code == 400 and "end_user_id" in r.text and "NUL" in r.text


def test_signing_in_again_ends_the_earlier_session(client: TestClient, browser: TestClient, api: Api) -> None:
    """As from a second tab whose sign-in page was opened before the first tab signed in."""
    token = form_token(client.get("/console/login").text)
    login_cookie = client.cookies["visionloop_login"]
    sign_in(client, api.key)
    earlier = client.cookies["visionloop_session"]
    client.cookies.set("visionloop_login", login_cookie, path="/console/login")
    r = client.post("/console/login", data={"api_key": api.key, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert client.cookies["visionloop_session"] != earlier
    assert client.get("/console", follow_redirects=False).status_code == 200
    replayed = browser.get("/console", headers={"Cookie": f"visionloop_session={earlier}"}, follow_redirects=False)
    assert replayed.status_code == 303


def test_htmx_turns_the_end_users_pages_alone(client: TestClient, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from visionloop.http.console import end_users

    monkeypatch.setattr(end_users, "PER_PAGE", 2)
    for i, user in enumerate(("ann", "ben", "cat")):
        _judge(api, f"p{i}", user, True)
    sign_in(client, api.key)
    page = client.get("/console/end-users").text
    older = re.search(r'id="older" hx-get="([^"]+)" hx-target="#users"', page).group(1)
    r = client.get(older, headers={"HX-Request": "true"})
    assert r.text.lstrip().startswith('<div id="users">') and "<html" not in r.text
    assert "<h2>How training weighs" not in r.text and ">ann</a>" in r.text and ">cat</a>" not in r.text
    assert 'hx-get="/console/end-users?page=1"' in r.text and 'id="older"' not in r.text
    restore = client.get(older, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert restore.text.startswith("<!doctype html>")
