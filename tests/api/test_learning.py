"""Learning through HTTP: feedback introduces a concept, a version is trained, evaluated, promoted
only when it is not worse, and rolled back in one call."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers import Api, b64, photo, scene_variants, train
from visionloop import status
from visionloop.cli import main
from visionloop.config import load_settings
from visionloop.core import VisionLoop
from visionloop.store.db import exclusive
from visionloop.store.tables import ModelVersion

GENERAL = "aaa03c23b3724a16a56b629203edc62c"


def variants(name: str, n: int, seed: int) -> list[bytes]:
    return scene_variants(Image.open(io.BytesIO(photo(name))).convert("RGB"), n, seed, quality=85)


def predict_and_judge(api: Api, images: list[bytes], concept: str, present: bool, user: str) -> None:
    for data in images:
        out = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(data)}}}]}
                       ).json()["outputs"][0]
        r = api.post(f"/models/{GENERAL}/feedback", {"input": {"id": out["input"]["id"], "data": {
            "concepts": [{"id": concept, "value": present}]}, "feedback_info": {
            "event_type": "annotation", "output_id": out["id"], "end_user_id": user}}})
        assert r.status_code == 200, r.text




def test_too_little_feedback_trains_nothing(api: Api) -> None:
    predict_and_judge(api, variants("chelsea", 2, 1), "kitty", True, "u1")
    version = train(api, GENERAL)
    assert version["status"]["code"] == 21117 and "enough" in version["status"]["details"]
    assert "kitty: 2 positive labels, fewer than 5" in version["status"]["details"]  # all its labels, none held out
    base = api.get(f"/models/{GENERAL}").json()["model"]["model_version"]["id"]
    assert base == "aa9ca48295b37401f8af92ad1af0d91d"  # nothing was promoted


@pytest.mark.slow
def test_feedback_concept_is_learned_promoted_and_rolled_back(api: Api, other_api: Api, core: VisionLoop,
                                                              tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    cats = variants("chelsea", 50, 2)
    others = variants("coffee", 17, 3) + variants("rocket", 17, 4) + variants("astronaut", 16, 5)
    predict_and_judge(api, cats, "kitty", True, "alice")
    predict_and_judge(api, others, "kitty", False, "bob")
    version = train(api, GENERAL)
    assert version["status"]["code"] == 21100, version
    info = version["visionloop"]
    assert info["kind"] == "concept_heads" and info["trained_on"]["events"] == 100
    assert info["promoted"] is True and info["decision"].startswith("promoted"), info["decision"]
    vid = version["id"]
    got = api.get(f"/models/{GENERAL}/versions/{vid}").json()["model_version"]
    assert got["status"]["code"] == 21100 and got["metrics"]["holdout"]["new_concepts"]["kitty"]["roc_auc"]["value"] > 0.9
    assert "new concepts go live on their own evidence: kitty: cross-validated AUC" in info["decision"]
    assert info["trained_on"]["train_images"] == 100  # every labelled image, none held out

    # the app now predicts with the new version: the concept users introduced is predicted
    fresh_cat = variants("chelsea", 1, 99)[0]
    out = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(fresh_cat)}}}],
                                                  "model": {"output_info": {"output_config": {
                                                      "select_concepts": [{"id": "kitty"}]}}}}).json()["outputs"][0]
    assert out["model"]["model_version"]["id"] == vid
    assert out["data"]["concepts"][0]["id"] == "kitty" and out["data"]["concepts"][0]["value"] > 0.5
    fresh_rocket = variants("rocket", 1, 98)[0]
    out = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(fresh_rocket)}}}],
                                                  "model": {"output_info": {"output_config": {
                                                      "select_concepts": [{"id": "kitty"}]}}}}).json()["outputs"][0]
    assert out["data"]["concepts"][0]["value"] < 0.5

    # another app never sees it
    other = other_api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(fresh_cat)}}}]}
                           ).json()["outputs"][0]
    assert other["model"]["model_version"]["id"] == "aa9ca48295b37401f8af92ad1af0d91d"
    assert "kitty" not in [c["id"] for c in other["data"]["concepts"]]

    # live metrics from the feedback on the base version's outputs
    metrics = api.post(f"/models/{GENERAL}/versions/aa9ca48295b37401f8af92ad1af0d91d/metrics").json()
    live = metrics["model_version"]["metrics"]["live"]
    assert live["concepts"]["kitty"]["n_pos"] == 50 and live["concepts"]["kitty"]["n_neg"] == 50

    # the CLI prints the same figures as a table (JSON on request) and writes a report with plots
    report = tmp_path / "report.html"
    done = subprocess.run([sys.executable, "-m", "visionloop", "evaluate", "--app", "app-a", "--version",
                           "aa9ca48295b37401f8af92ad1af0d91d", "--report", str(report),
                           "--data-dir", str(core.settings.data_dir)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    table = done.stdout.splitlines()
    assert table[0].split() == ["concept", "labels", "+/-", "precision", "recall", "ROC", "AUC"]
    assert table[1].split()[:2] == ["kitty", "50/50"] and "unlinked events: 0" in table
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 4 and "Precision-recall" in page  # quality over time too
    assert "unlinked feedback" in page and "<h2>Figures by concept</h2><pre>concept" in page
    assert "Top concept: what users said" in page
    examples = page.split("<h2>Examples by concept</h2>")[1]  # kitty's best-scored images, right and wrong
    assert examples.startswith("<img src='data:image/png;base64,")
    with pytest.raises(SystemExit):
        main(["evaluate", "--app", "app-a", "--version", "aa9ca48295b37401f8af92ad1af0d91d", "--json",
              "--data-dir", str(core.settings.data_dir)])
    figures = json.loads(capsys.readouterr().out)
    assert figures["concepts"]["kitty"]["n_pos"] == 50 and figures["unlinked_events"] == 0

    # rollback is one call; a pinned version keeps predicting with that version
    r = api.post(f"/models/{GENERAL}/versions/aa9ca48295b37401f8af92ad1af0d91d/activate")
    assert r.json()["model"]["model_version"]["id"] == "aa9ca48295b37401f8af92ad1af0d91d"
    pinned = api.post(f"/models/{GENERAL}/versions/{vid}/outputs",
                      {"inputs": [{"data": {"image": {"base64": b64(fresh_cat)}}}]}).json()["outputs"][0]
    assert pinned["model"]["model_version"]["id"] == vid and "kitty" in [c["id"] for c in pinned["data"]["concepts"]]
    unpinned = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(fresh_cat)}}}]}
                        ).json()["outputs"][0]
    assert unpinned["model"]["model_version"]["id"] == "aa9ca48295b37401f8af92ad1af0d91d"

    # erasing an end user retrains without their feedback; the version the operator chose by hand
    # stays until the operator changes it (tests/api/test_hostile_tenant.py: without a choice by
    # hand, the app falls back to the base version when nothing is left to learn from)
    assert api.post(f"/models/{GENERAL}/versions/{vid}/activate").status_code == 200
    assert api.get(f"/models/{GENERAL}").json()["model"]["model_version"]["id"] == vid
    assert api.delete("/feedback", params={"end_user_id": "bob"}).json()["erased"] == 50
    assert api.get(f"/models/{GENERAL}").json()["model"]["model_version"]["id"] == vid
    newest = api.get(f"/models/{GENERAL}/versions").json()["model_versions"][0]
    assert newest["status"]["code"] == 21117 and newest["visionloop"]["parent_id"] == vid


def test_activating_an_untrained_or_foreign_version_is_refused(api: Api, other_api: Api) -> None:
    predict_and_judge(api, variants("chelsea", 2, 1), "kitty", True, "u1")
    failed = train(api, GENERAL)["id"]
    r = api.post(f"/models/{GENERAL}/versions/{failed}/activate")
    assert r.status_code == 400 and r.json()["status"]["code"] == 21202
    r = other_api.post(f"/models/{GENERAL}/versions/{failed}/activate")
    assert r.status_code == 404 and r.json()["status"]["code"] == 21200


def test_a_version_claimed_by_another_process_is_left_to_it(api: Api, core: VisionLoop, tmp_path: Path) -> None:
    """Two servers on one PostgreSQL both resume unfinished versions: only the claimant trains."""
    if not core.db.engine.dialect.name == "postgresql":
        pytest.skip("claims are PostgreSQL advisory locks; SQLite serves one process")
    predict_and_judge(api, variants("chelsea", 10, seed=7), "tabby-learned", True, user="alice")  # enough to
    predict_and_judge(api, variants("coffee", 10, seed=8), "tabby-learned", False, user="bob")    # train on
    core.learning.submit = lambda app_id, version_id: None  # queue only, as a server's worker would
    queued = core.learning.request(api.app_id, GENERAL)
    other = VisionLoop(load_settings({"data_dir": tmp_path / "other", "database_url": core.settings.database_url},
                                     environ={}), core.runtime)
    try:
        with exclusive(core.db.engine, f"visionloop:train:{queued.id}", wait=False) as mine:
            assert mine
            left = other.learning.run(queued.id)  # another process holds it: not trained twice
            assert left.status_code == status.MODEL_QUEUED_FOR_TRAINING
        assert other.learning.run(queued.id).status_code == status.MODEL_TRAINED  # free: trained, once
    finally:
        other.close()


def test_an_automatic_retrain_and_a_learn_call_give_one_version(api: Api, core: VisionLoop, tmp_path: Path) -> None:
    """The server's worker queued a version (its automatic retrain); `visionloop learn`, another
    process without a worker, asks 9 ms later: it joins that version (trains it or waits for it),
    and the worker's turn then finds it done."""
    predict_and_judge(api, variants("chelsea", 10, seed=7), "tabby-learned", True, user="alice")
    predict_and_judge(api, variants("coffee", 10, seed=8), "tabby-learned", False, user="bob")
    worker_queue: list[str] = []
    core.learning.submit = lambda app_id, version_id: worker_queue.append(version_id)  # the server's worker
    queued = core.learning.request(api.app_id, GENERAL)
    cli = VisionLoop(load_settings({"data_dir": core.settings.data_dir, "database_url": core.settings.database_url},
                                   environ={}), core.runtime)
    try:
        said: list[str] = []
        learned = cli.learning.request(api.app_id, GENERAL, progress=said.append)
        assert learned.id == queued.id == worker_queue[0] and learned.status_code == status.MODEL_TRAINED
        assert said[0] == f"joining version {queued.id}, already requested for this app and model"
        assert core.learning.run(queued.id).status_code == status.MODEL_TRAINED  # the worker's turn: nothing to do
        # a version another process is training: a request without a worker waits for it
        core.learning.submit = None
        with core.db.transaction() as s:
            s.get(ModelVersion, queued.id).status_code = status.MODEL_TRAINING
        finish = threading.Timer(0.3, lambda: core.learning._finish(queued.id, status.MODEL_TRAINED, {}, {}, None,
                                                                    time.monotonic()))
        finish.start()
        waited = cli.learning.request(api.app_id, GENERAL, progress=said.append)
        finish.join()
        assert waited.id == queued.id and waited.status_code == status.MODEL_TRAINED
        assert f"version {queued.id} is training in another process; waiting for it" in said
    finally:
        cli.close()
    versions = api.get(f"/models/{GENERAL}/versions").json()["model_versions"]
    assert [v["id"] for v in versions if v["id"] != "aa9ca48295b37401f8af92ad1af0d91d"] == [queued.id]
