"""Stored embeddings follow the output retention, through HTTP: pruning predict traffic deletes the
embeddings of its images, deleting inputs and erasing end users do too, and an embedding something
still needs (an input, a clicked search's query, a feedback event's image, a version's training
images) stays with the feature that reads it working (visual search, the click memory, drift).
visionloop/services/embedding_gc.py says who needs an embedding and how racing writers are handled."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, func, select, update

from tests.alarm_traffic import drawings, photos
from tests.api.test_search_memory import QUERY, by_image, click, corpus, search  # noqa: F401 (corpus: a fixture)
from tests.feedback_support import GENERAL, predict
from tests.helpers import Api, ImageServer, b64, png_bytes, run_cli, scene, scene_variants
from visionloop import status
from visionloop.core import VisionLoop
from visionloop.inference.backbone import EMBEDDING_DIM
from visionloop.services import predict as predict_module
from visionloop.services.embedding_gc import EmbeddingCollector
from visionloop.store.blobs import digest_of
from visionloop.store.tables import Embedding, FeedbackEvent, ModelVersion, Output, Search, SearchQueryImage, utcnow

REFERENCE, WINDOW = 100, 50  # the drift alarm's sizes in tests/api/test_alarms.py


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {"output_retention_days": 30, "fetch_allow_hosts": "127.0.0.1", "feedback_rate_limit": 0,
            "feedback_dedup_seconds": 0, "alarm_drift_reference": REFERENCE, "alarm_drift_window": WINDOW}


def stored(core: VisionLoop, *images: bytes) -> list[bool]:
    """Whether each image's embedding is stored."""
    with core.db.session() as s:
        present = set(s.scalars(select(Embedding.digest).where(Embedding.digest.in_([digest_of(i) for i in images]))))
    return [digest_of(i) in present for i in images]


def age_traffic(core: VisionLoop, days: int = 40) -> None:
    """Every output and search so far was made ``days`` ago."""
    then = utcnow() - dt.timedelta(days=days)
    with core.db.transaction() as s:
        s.execute(update(Output).values(created_at=then))
        s.execute(update(Search).values(created_at=then))


def prune(core: VisionLoop) -> int:
    return core.predict.prune(utcnow() - dt.timedelta(days=core.settings.output_retention_days))


def test_pruning_predict_traffic_deletes_its_embeddings_but_not_a_stored_inputs(
        api: Api, core: VisionLoop, image_server: ImageServer) -> None:
    by_bytes, by_url, also_input, recent = (photo for photo in scene_variants(scene("coffee"), 4, seed=5, quality=85))
    predict(api, GENERAL, by_bytes)
    r = api.post(f"/models/{GENERAL}/outputs",
                 {"inputs": [{"data": {"image": {"url": image_server.url("/cup.jpg", by_url)}}}]})
    assert r.status_code == 200 and r.json()["outputs"][0]["status"]["code"] == 10000, r.text
    r = api.post("/inputs", {"inputs": [{"id": "cup", "data": {"image": {"base64": b64(also_input)}}}]})
    assert r.status_code == 200, r.text
    predict(api, GENERAL, also_input)  # the same image sent as bytes: the output names the input's digest
    age_traffic(core)
    predict(api, GENERAL, recent)
    assert stored(core, by_bytes, by_url, also_input, recent) == [True] * 4
    r = run_cli(core, "outputs", "prune", env={"VISIONLOOP_OUTPUT_RETENTION_DAYS": "30"})
    assert r.returncode == 0 and "pruned 3 outputs older than 30 days" in r.stdout, r.stdout + r.stderr
    assert stored(core, by_bytes, by_url, also_input, recent) == [False, False, True, True]
    r = api.post("/searches", {"query": {"ands": [{"output": {"input": {"id": "cup"}}}]}})
    assert r.status_code == 200 and r.json()["hits"][0]["input"]["id"] == "cup", r.text


def test_deleting_an_input_deletes_its_embedding_unless_an_output_still_names_it(api: Api, core: VisionLoop) -> None:
    alone, predicted = png_bytes((200, 30, 30), (64, 64)), png_bytes((30, 200, 30), (64, 64))
    r = api.post("/inputs", {"inputs": [{"id": "alone", "data": {"image": {"base64": b64(alone)}}},
                                        {"id": "predicted", "data": {"image": {"base64": b64(predicted)}}}]})
    assert r.status_code == 200, r.text
    predict(api, GENERAL, predicted)
    assert api.delete("/inputs", {"ids": ["alone", "predicted"]}).status_code == 200
    assert stored(core, alone, predicted) == [False, True]
    age_traffic(core)
    assert prune(core) == 1
    assert stored(core, predicted) == [False]


def test_a_clicked_query_keeps_its_embedding_for_the_click_memory_until_its_click_is_erased(
        api: Api, core: VisionLoop, corpus: list[str]) -> None:  # noqa: F811 (the fixture imported above)
    sid, before, _ = search(api)  # by QUERY, sent as an image
    click(api, sid, before[8])
    unclicked = scene_variants(scene("rocket"), 1, seed=98, quality=90)[0]
    search(api, by_image(unclicked))
    predict(api, GENERAL, QUERY)
    predict(api, GENERAL, unclicked)
    age_traffic(core)
    assert prune(core) == 2
    assert stored(core, QUERY, unclicked) == [True, False]  # the clicked search still needs its query image
    recompressed = scene_variants(scene("chelsea"), 1, seed=99, quality=70)[0]  # a near-duplicate query:
    _, again, _ = search(api, by_image(recompressed))  # the memory finds it by the remembered query's embedding
    assert again.index(before[8]) < 3, again
    r = api.delete("/feedback", params={"end_user_id": "u1"})
    assert r.status_code == 200 and r.json()["erased"] == 1, r.text
    assert stored(core, QUERY) == [False]  # old, and its click is gone


def test_a_recent_unclicked_search_keeps_its_query_image_and_the_sweep_takes_it_once_old(
        api: Api, core: VisionLoop) -> None:
    query = png_bytes((10, 10, 250), (64, 64))
    r = api.post("/inputs", {"inputs": [{"id": "x", "data": {"image": {"base64": b64(png_bytes())}}}]})
    assert r.status_code == 200, r.text
    search(api, by_image(query))
    assert core.embeddings.sweep() == (0, 2)  # a click may still come
    age_traffic(core)
    r = run_cli(core, "embeddings", "sweep", env={"VISIONLOOP_OUTPUT_RETENTION_DAYS": "30"})
    assert r.returncode == 0 and "deleted the embeddings of 1 images nothing needs; 1 kept" in r.stdout, r.stderr
    assert "sweeping embeddings" in r.stderr
    assert stored(core, query, png_bytes()) == [False, True]


def test_with_retention_0_every_search_keeps_its_images(core: VisionLoop) -> None:
    """Traffic is kept for ever: an old unclicked search's query image too; a horizon lets it go."""
    digest = digest_of(png_bytes((10, 250, 10), (64, 64)))
    with core.db.transaction() as s:
        predict_module.store_embeddings(s, {digest: np.ones(EMBEDDING_DIM, np.float32)})
        s.add(Search(id="s", app_id="a", query={}, kind="visual", key_id="k", query_digests=digest,
                     created_at=utcnow() - dt.timedelta(days=999)))
        s.flush()
        s.add(SearchQueryImage(search_id="s", digest=digest))
    assert EmbeddingCollector(core.db, retention_days=0).collect([digest]) == 0
    assert EmbeddingCollector(core.db, retention_days=30).collect([digest]) == 1


def test_unlinked_feedback_keeps_the_training_images_and_drift_still_compares_with_them(
        api: Api, core: VisionLoop) -> None:
    """A version learned from feedback that named its images by their bytes (no output): the outputs
    of those images are pruned, their embeddings stay for the log's events, and drift after the
    promotion is judged against them; erasing that feedback lets them go."""
    training = photos(REFERENCE, seed=100)
    for start in range(0, REFERENCE, 25):
        r = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(img)}}}
                                                              for img in training[start:start + 25]]})
        assert r.status_code == 200, r.text
    for img in training:
        r = api.post(f"/models/{GENERAL}/feedback", {"input": {"data": {
            "image": {"base64": b64(img)}, "concepts": [{"id": "n02123045", "value": True}]},
            "feedback_info": {"event_type": "annotation", "output_id": "oooooooid", "end_user_id": "ann"}}})
        assert r.status_code == 200, r.text
    age_traffic(core)
    assert prune(core) == REFERENCE  # unlinked feedback keeps no output
    assert all(stored(core, *training))
    view = core.models.get(api.app_id, GENERAL)
    with core.db.transaction() as s:
        last_seq = s.scalar(select(FeedbackEvent.seq).order_by(FeedbackEvent.seq.desc()).limit(1))
        s.add(ModelVersion(id="trained-on-photos", model_pk=view.model.pk, app_id=api.app_id,
                           parent_id=view.version.id, status_code=status.MODEL_TRAINED, created_at=utcnow(),
                           params={"kind": "base", "trained_on": {"last_seq": last_seq}}))
    core.models.set_active(api.app_id, view.model, "trained-on-photos")
    for start in range(0, WINDOW, 25):
        r = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(img)}}}
                                                              for img in drawings(WINDOW, seed=7)[start:start + 25]]})
        assert r.status_code == 200, r.text
    core.alarms.check(api.app_id)
    r = api.get("/alarms", params={"state": "firing"})
    assert [(a["kind"], a["baseline"]) for a in r.json()["alarms"]] == [("input_drift", "trained-on-photos")], r.text
    r = api.delete("/feedback", params={"end_user_id": "ann"})
    assert r.status_code == 200 and r.json()["erased"] == REFERENCE, r.text
    assert not any(stored(core, *training))  # only the erased events kept them


def test_a_writer_whose_embedding_was_collected_before_its_commit_puts_it_back(
        api: Api, core: VisionLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    """A predict finds its image's embedding stored (by an earlier search) and inserts none; a
    collector in another process deletes it before the predict's output commits. The predict's
    check after its commit puts it back."""
    image = png_bytes((120, 60, 200), (64, 64))
    search(api, by_image(image))
    real = predict_module.still_stored

    def collected_first(db: Any, vectors: Any) -> None:
        with core.db.transaction() as s:
            s.execute(delete(Embedding).where(Embedding.digest == digest_of(image)))
        real(db, vectors)

    monkeypatch.setattr(predict_module, "still_stored", collected_first)
    predict(api, GENERAL, image)
    assert stored(core, image) == [True]


def test_a_collector_puts_back_an_embedding_a_row_came_to_need_while_it_deleted(
        api: Api, core: VisionLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    """The collector's check found nothing; a writer's output commits before its second check (the
    writer's own check already passed): the collector puts the embedding back."""
    image = png_bytes((200, 120, 60), (64, 64))
    predict(api, GENERAL, image)
    age_traffic(core)
    real = EmbeddingCollector.referenced
    calls: list[int] = []

    def writer_commits_before_the_second_check(self: EmbeddingCollector, digests: Any) -> set[str]:
        calls.append(1)
        if len(calls) == 2:
            with core.db.transaction() as s:
                s.add(Output(id="late", app_id=api.app_id, model_pk=0, version_id="v", input_id="i",
                             digest=digest_of(image), result={}, key_id="k", created_at=utcnow()))
        return real(self, digests)

    monkeypatch.setattr(EmbeddingCollector, "referenced", writer_commits_before_the_second_check)
    assert prune(core) == 1
    assert len(calls) == 2 and stored(core, image) == [True]


def test_predicts_racing_a_collector_never_leave_an_output_without_its_embedding(api: Api, core: VisionLoop) -> None:
    """Really concurrent (on PostgreSQL, two writers at once): in each round one thread predicts an
    image while another prunes every output of it and collects its embedding. Whatever the
    interleaving, an output left standing has its image's embedding."""
    image = png_bytes((90, 160, 20), (64, 64))
    digest = digest_of(image)
    start = threading.Barrier(2)

    def predicts() -> None:
        start.wait()
        predict(api, GENERAL, image)

    def prunes() -> None:
        start.wait()
        with core.db.transaction() as s:
            s.execute(delete(Output).where(Output.digest == digest))
        core.embeddings.collect([digest])

    for _ in range(12):
        with ThreadPoolExecutor(2) as pool:
            for done in [pool.submit(predicts), pool.submit(prunes)]:
                done.result()
        with core.db.session() as s:
            outputs = s.scalar(select(func.count()).select_from(Output).where(Output.digest == digest))
        assert not outputs or stored(core, image) == [True]
