"""The console in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium), resolving no host but 127.0.0.1: sign in, see the versions with the active one marked,
roll back from the buttons and see the API agree, filter the feedback log and see its images.

SQLite pass only (no ``core`` fixture): a browser needs no second database. Screenshots of each
page go to a temporary folder, or to $CONSOLE_SCREENSHOTS when set (for the docs, by hand).
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.console.support import FACE, GENERAL, trained_versions
from tests.helpers import b64, free_port, png_bytes
from visionloop import status
from visionloop.config import load_settings
from visionloop.core import VisionLoop
from visionloop.http.app import create_app
from visionloop.inference.runtime import ModelRuntime
from visionloop.services.paging import Page
from visionloop.store.tables import Input, InputRegion, Output

pytestmark = pytest.mark.slow
# The API calls that set a page up: httpx's 5 s default once timed out on a loaded CI machine (the
# first add of a fresh server); a hang would still fail, later.
API_TIMEOUT = 60.0


@pytest.fixture
def served(tmp_path: Path, runtime: ModelRuntime) -> Iterator[tuple[str, VisionLoop]]:
    """A server on a loopback port over its own SQLite database."""
    import uvicorn

    core = VisionLoop(load_settings({"data_dir": tmp_path / "data"}, environ={}), runtime)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(core.settings, core), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", core
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        core.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver_path, "chromium or chromium-driver is missing: scripts/install test installs them"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # to see script errors and CSP refusals
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def submit(browser: Any, by: str, what: str) -> None:
    """Click a button or link and wait for the next page (a click returns before it loads)."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    element = browser.find_element(by, what)
    element.click()
    WebDriverWait(browser, 30).until(expected_conditions.staleness_of(element))
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.readyState") == "complete")


def wait_for(browser: Any, condition: Any, timeout: float = 20) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout).until(condition)


def painted(browser: Any, chart_id: str) -> int:
    """How many pixels uPlot painted on the chart's canvas (0 when it drew nothing)."""
    return browser.execute_script(
        "const c = document.querySelector('#' + arguments[0] + ' canvas');"
        "if (!c) return 0;"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;", chart_id)


def text_of(browser: Any, selector: str, html: bool = False) -> str:
    """An element's text (or markup) read at once: htmx may swap it between a find and a read."""
    return browser.execute_script("const e = document.querySelector(arguments[0]);"
                                  "return e ? (arguments[1] ? e.outerHTML : e.textContent) : ''", selector, html)


def script_errors(browser: Any) -> list[str]:
    """What the page's scripts or its Content-Security-Policy complained of."""
    return [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_an_operator_signs_in_sees_the_active_version_and_rolls_back(served: tuple[str, VisionLoop], browser: Any,
                                                                     shots: Path) -> None:
    from selenium.webdriver.common.by import By

    base, core = served
    core.apps.create_app("shop")
    _, key = core.apps.create_key("shop")
    old, new = trained_versions(core, "shop", GENERAL, 2)

    browser.get(f"{base}/console/models/{GENERAL}")
    assert browser.current_url.startswith(f"{base}/console/login?next=")
    browser.save_screenshot(str(shots / "login.png"))
    browser.find_element(By.ID, "api-key").send_keys(str(key))
    submit(browser, By.ID, "sign-in")
    assert browser.current_url == f"{base}/console/models/{GENERAL}"
    assert browser.find_element(By.ID, "app-id").text == "shop"
    active = browser.find_element(By.CSS_SELECTOR, "#versions tr.active")
    assert active.get_attribute("id") == f"v-{new}" and "active" in active.find_element(By.CSS_SELECTOR, ".badge").text
    browser.save_screenshot(str(shots / "model.png"))

    submit(browser, By.CSS_SELECTOR, f"#v-{old} a.button")
    assert "Roll back" in browser.find_element(By.TAG_NAME, "h1").text
    browser.save_screenshot(str(shots / "confirm.png"))
    submit(browser, By.ID, "confirm")
    assert browser.find_element(By.CSS_SELECTOR, "#versions tr.active").get_attribute("id") == f"v-{old}"
    assert core.models.get("shop", GENERAL).version.id == old  # what the API predicts with now
    assert "activate" in browser.find_element(By.ID, "audit").text
    browser.save_screenshot(str(shots / "rolled-back.png"))

    browser.get(f"{base}/console/models/{GENERAL}/versions/{old}")
    assert "Quality over time" in browser.page_source
    browser.save_screenshot(str(shots / "quality.png"))


def test_an_operator_filters_the_feedback_log_and_sees_its_images(served: tuple[str, VisionLoop], browser: Any,
                                                                   shots: Path) -> None:
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, core = served
    core.apps.create_app("shop")
    _, key = core.apps.create_key("shop")
    headers = {"Authorization": f"Key {key}"}
    with httpx.Client(base_url=f"{base}/v2", headers=headers, timeout=API_TIMEOUT) as api:
        for i, user in enumerate(("alice", "bob", "alice")):
            api.post("/inputs", json={"inputs": [{"id": f"img{i}", "data": {"image": {
                "base64": b64(png_bytes((60 * i, 120, 200), (64, 48)))}}}]}).raise_for_status()
            api.post(f"/models/{GENERAL}/feedback", json={"input": {"id": f"img{i}", "data": {"concepts": [
                {"id": "tabby", "value": i != 1}]}, "feedback_info": {"event_type": "annotation",
                                                                     "output_id": f"gone-{i}", "end_user_id": user}}}
                     ).raise_for_status()

    browser.get(f"{base}/console/login")
    browser.find_element(By.ID, "api-key").send_keys(str(key))
    submit(browser, By.ID, "sign-in")
    wait_for(browser, lambda d: painted(d, "chart-feedback-days") > 500)  # uPlot drew the day's judgements
    legend = browser.find_element(By.CSS_SELECTOR, "#chart-feedback-days .u-legend").text
    assert "annotation: present" in legend and "annotation: absent" in legend
    browser.save_screenshot(str(shots / "overview.png"))
    browser.execute_script("document.querySelector('#chart-feedback-days').scrollIntoView()")
    browser.save_screenshot(str(shots / "overview-chart.png"))
    submit(browser, By.LINK_TEXT, "Feedback")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#events tr.event")) == 3
    heading = browser.find_element(By.TAG_NAME, "h1")
    browser.find_element(By.NAME, "end_user_id").send_keys("alice")
    browser.find_element(By.ID, "filter").click()  # htmx swaps the selection in; the page stays
    wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#events tr.event")) == 2)
    wait_for(browser, lambda d: "end_user_id=alice" in d.current_url)  # the filtered view's address, to share
    assert browser.find_element(By.NAME, "end_user_id").get_attribute("value") == "alice"  # the form was kept
    classes = browser.execute_script("return [...document.querySelectorAll('#events tr.event')].map(r => r.className)")
    assert len(classes) == 2 and all("unlinked" in c for c in classes)
    assert "end_user_id=alice" in browser.execute_script("return document.getElementById('export').href")
    loaded = "return [...document.querySelectorAll('img.thumb')].map(i => i.complete ? i.naturalWidth : -1)"
    WebDriverWait(browser, 20).until(lambda d: -1 not in d.execute_script(loaded))
    assert browser.execute_script(loaded) == [64, 64]  # the thumbnails loaded with the session cookie alone
    browser.save_screenshot(str(shots / "feedback.png"))
    assert heading.text == "Feedback log"  # still the element of the first load: no page was reloaded
    assert not script_errors(browser)

    submit(browser, By.ID, "sign-out")
    assert browser.current_url == f"{base}/console/login"
    browser.get(f"{base}/console/feedback")
    assert browser.current_url.startswith(f"{base}/console/login")


def sign_in(browser: Any, base: str, key: str) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{base}/console/login")
    browser.find_element(By.ID, "api-key").send_keys(key)
    submit(browser, By.ID, "sign-in")


def test_an_operator_visits_every_page_labels_and_erases(served: tuple[str, VisionLoop], browser: Any,
                                                         shots: Path) -> None:
    import httpx
    from selenium.webdriver.common.by import By

    base, core = served
    core.apps.create_app("shop")
    _, key = core.apps.create_key("shop")
    core.apps.create_app("rival")
    _, rival = core.apps.create_key("rival")
    _, reader = core.apps.create_key("shop", ("feedback_admin",))
    with httpx.Client(base_url=f"{base}/v2", headers={"Authorization": f"Key {key}"}, timeout=API_TIMEOUT) as api:
        api.post("/inputs", json={"inputs": [{"id": "disputed", "data": {"image": {
            "base64": b64(png_bytes((200, 120, 40), (64, 48)))}}}]}).raise_for_status()
        for user, present in (("alice", True), ("bob", False)):
            api.post(f"/models/{GENERAL}/feedback", json={"input": {"id": "disputed", "data": {"concepts": [
                {"id": "tabby", "value": present}]}, "feedback_info": {"event_type": "annotation", "output_id": "o",
                                                                      "end_user_id": user}}}).raise_for_status()
        search = api.post("/searches", json={"query": {"ands": [{"output": {"input": {"data": {"image": {
            "base64": b64(png_bytes((200, 120, 40), (64, 48)))}}}}}]}}).json()
        api.post("/searches/feedback", json={"input": {"id": search["hits"][0]["input"]["id"], "feedback_info": {
            "event_type": "search_click", "search_id": search["id"], "end_user_id": "alice"}}}).raise_for_status()
    with core.db.transaction() as s:  # a face the detection model was unsure of on the disputed image
        s.add(Output(id="unsure-face", app_id="shop", model_pk=core.models.get("shop", FACE).model.pk, version_id="v",
                     input_id=None, digest=s.get(Input, ("shop", "disputed")).digest, key_id="k", result={
                         "concepts": [], "regions": [{"id": "r1", "box": [0.2, 0.2, 0.8, 0.8], "value": 0.5,
                                                      "concepts": [["face", "face", 0.5]]}]}))

    sign_in(browser, base, str(key))
    for label, shot in (("Models", "models"), ("Search", "search"), ("Review", "review"), ("End users", "end-users")):
        submit(browser, By.LINK_TEXT, label)
        assert browser.find_element(By.TAG_NAME, "h1").text.lower().startswith(label.lower()[:4]), label
        if label == "Search":  # the click-position histogram and CTR/MRR per day, drawn by uPlot
            wait_for(browser, lambda d: painted(d, "chart-clicks") > 500 and painted(d, "chart-search-days") > 500)
            browser.execute_script("document.querySelector('#chart-search-days').scrollIntoView()")
        browser.save_screenshot(str(shots / f"{shot}.png"))

    submit(browser, By.LINK_TEXT, "Review")
    item = browser.find_element(By.CSS_SELECTOR, "#queue tr.item")
    assert "disputed" in item.text and "1 / 1" in item.text
    submit(browser, By.CSS_SELECTOR, "#queue tr.item button.present")
    assert "present" == browser.find_element(By.CSS_SELECTOR, "#queue tr.item td.label").text
    labelled = core.inputs.get("shop", "disputed").concepts
    assert [(a.concept_id, a.value) for a in labelled] == [("tabby", 1.0)]

    browser.find_element(By.CSS_SELECTOR, ".review-image button.wrong").click()  # htmx: the input's part swapped
    wait_for(browser, lambda d: text_of(d, ".review-image td.label") == "wrong")
    for name, value in (("concept_id", "tabby"), ("top_row", "0.9"), ("left_col", "0.1"), ("bottom_row", "0.3"),
                        ("right_col", "0.5")):
        browser.find_element(By.CSS_SELECTOR, f".review-image form.missed input[name={name}]").send_keys(value)
    browser.find_element(By.CSS_SELECTOR, ".review-image button.missed-object").click()
    wait_for(browser, lambda d: "box: top_row (0.9) must be less than bottom_row" in text_of(d, ".review-image .error"))
    with core.db.session() as s:
        regions = [(r.concepts, r.top_row) for r in s.scalars(select(InputRegion).where(InputRegion.app_id == "shop"))]
    assert regions == [([{"id": "face", "value": 0.0}], 0.2)]

    submit(browser, By.LINK_TEXT, "End users")
    submit(browser, By.XPATH, "//tr[td/a[text()='bob']]//a[@class='button']")
    assert "1 annotation event" in browser.find_element(By.ID, "counts").text
    browser.save_screenshot(str(shots / "erase.png"))
    submit(browser, By.ID, "confirm")
    assert "Erased 1 feedback events" in browser.page_source and "bob" not in browser.page_source

    sign_in(browser, base, str(reader))
    assert "Models (needs 'models')" in browser.find_element(By.TAG_NAME, "nav").text
    browser.get(f"{base}/console/models/{GENERAL}")
    assert "needs the 'models' scope, which this API key lacks" in browser.find_element(By.TAG_NAME, "main").text
    browser.save_screenshot(str(shots / "scope-missing.png"))

    sign_in(browser, base, str(rival))
    browser.get(f"{base}/console/feedback")
    assert "No feedback matches." in browser.page_source and "alice" not in browser.page_source
    browser.get(f"{base}/console/review")
    assert "disputed" not in browser.page_source


def test_train_now_shows_the_training_progress_then_the_new_version(served: tuple[str, VisionLoop], browser: Any,
                                                                    shots: Path, monkeypatch: pytest.MonkeyPatch
                                                                    ) -> None:
    """With a training worker, as a server runs: the button queues a version (after a confirmation),
    its stage and progress show while it trains, and the versions table then shows how it ended."""
    from selenium.webdriver.common.by import By

    base, core = served
    core.apps.create_app("shop")
    _, key = core.apps.create_key("shop")
    release = threading.Event()
    train = core.learning._train

    def held(version: Any, model: Any, say: Any) -> Any:  # a training that takes until the test has looked
        say("aggregating feedback into labels")
        release.wait(30)
        return train(version, model, say)

    monkeypatch.setattr(core.learning, "_train", held)
    core.start_worker()
    sign_in(browser, base, str(key))
    browser.get(f"{base}/console/models/{GENERAL}")
    browser.find_element(By.ID, "train").click()
    alert = wait_for(browser, lambda d: d.switch_to.alert)
    assert "Train a new version" in alert.text
    alert.accept()
    wait_for(browser, lambda d: "aggregating feedback" in text_of(d, "#training .progress .stage"))
    shown = browser.execute_script("const p = document.querySelector('#training .progress');"
                                   "return [p.id, p.querySelector('progress').value]")
    version_id, fraction = shown[0][len("progress-"):], shown[1]
    assert 0 < fraction < 1
    wait_for(browser, lambda d: "training" in text_of(d, f"#v-{version_id}").lower())  # listed while it trains
    browser.save_screenshot(str(shots / "training.png"))

    release.set()
    wait_for(browser, lambda d: "insufficient data" in text_of(d, f"#v-{version_id}"))
    assert "hx-get" not in text_of(browser, f"#progress-{version_id}", html=True)
    assert "train" in text_of(browser, "#audit")
    latest = core.models.versions("shop", core.models.get("shop", GENERAL).model, Page(1, 1))[0]
    assert latest.id == version_id  # as the API answers
    assert latest.status_code == status.MODEL_TRAINING_INSUFFICIENT_DATA
    assert not script_errors(browser)
