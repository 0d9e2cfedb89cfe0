"""Deleting inputs, pruning outputs and erasing end users delete the images no row refers to any
more, in the local folder and in an S3-compatible store (a real SeaweedFS server), and never an
image another input, output or app still shows, even when a writer in another process races the
deletion (visionloop/services/blob_gc.py explains the protocol)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from tests.conftest import TEST_DATABASE, make_api
from tests.feedback_support import GENERAL, concept_body, predict
from tests.helpers import Api, b64, photo, png_bytes, run_cli
from visionloop.config import load_settings
from visionloop.core import VisionLoop
from visionloop.http.app import create_app
from visionloop.inference.runtime import ModelRuntime
from visionloop.services.blob_gc import BlobCollector
from visionloop.store.blobs import BlobStore, BlobUnavailable, digest_of
from visionloop.store.tables import Input, Output

pytestmark = pytest.mark.postgres  # the folder store on both databases; S3 in the SQLite pass only


@pytest.fixture(params=["folder", "s3"])
def gc(request: pytest.FixtureRequest, tmp_path: Path, runtime: ModelRuntime,
       database_url: str) -> Iterator[tuple[VisionLoop, Api]]:
    """A server with each blob store (outputs kept one day past their feedback), and an API on it."""
    settings: dict[str, Any] = {"data_dir": tmp_path / "data", "database_url": database_url,
                                "output_retention_days": 1}
    if request.param == "s3":
        if TEST_DATABASE == "postgres":
            pytest.skip("the S3 server runs in the SQLite pass")
        settings |= {"blob_store": "s3", "blob_url": request.getfixturevalue("blob_url")}
    core = VisionLoop(load_settings(settings, environ={}), runtime)
    with TestClient(create_app(core.settings, core), raise_server_exceptions=False) as client:
        yield core, make_api(core, client, "shop")
    core.close()


def add(api: Api, input_id: str, data: bytes) -> str:
    r = api.post("/inputs", {"inputs": [{"id": input_id, "data": {"image": {"base64": b64(data)}}}]})
    assert r.status_code == 200, r.text
    return digest_of(data)


def delete(api: Api, input_id: str) -> None:
    r = api.delete(f"/inputs/{input_id}")
    assert r.status_code == 200 and r.json()["status"]["code"] == 10000, r.text


def test_deleting_an_input_deletes_its_image_and_thumbnail(gc: tuple[VisionLoop, Api]) -> None:
    core, api = gc
    digest = add(api, "kitty", photo("chelsea"))
    assert api.get("/inputs/kitty/image", params={"size": "thumbnail"}).status_code == 200
    assert core.blobs.exists(digest) and core.blobs.get_derived(digest, "thumb256") is not None
    delete(api, "kitty")
    assert not core.blobs.exists(digest)
    assert core.blobs.get_derived(digest, "thumb256") is None
    assert list(core.blobs.digests()) == []


def test_an_image_another_input_or_app_shows_is_kept_until_the_last_goes(gc: tuple[VisionLoop, Api]) -> None:
    core, api = gc
    other = make_api(core, api.client, "other")
    digest = add(api, "a", photo("chelsea"))
    add(api, "b", photo("chelsea"))
    add(other, "c", photo("chelsea"))
    delete(api, "a")
    assert core.blobs.exists(digest)
    r = api.delete("/inputs", {"delete_all": True})
    assert r.status_code == 200, r.text
    assert core.blobs.exists(digest)  # the other app's input still shows it
    assert other.get("/inputs/c/image").status_code == 200
    delete(other, "c")
    assert not core.blobs.exists(digest)


def test_an_output_keeps_its_image_until_it_is_pruned(gc: tuple[VisionLoop, Api]) -> None:
    core, api = gc
    digest = add(api, "kitty", photo("chelsea"))
    predict(api, GENERAL, photo("chelsea"))
    delete(api, "kitty")
    assert core.blobs.exists(digest)
    assert core.predict.prune(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=1)) == 1
    assert not core.blobs.exists(digest)


def test_erasing_an_end_user_deletes_the_images_only_their_feedback_kept(gc: tuple[VisionLoop, Api]) -> None:
    """Outputs past the retention stay while feedback refers to them; erasing that feedback lets them
    go, with their images; a recent output judged by the same user stays."""
    core, api = gc
    old, recent = photo("chelsea"), png_bytes((0, 90, 200), (64, 64))
    old_out, recent_out = predict(api, GENERAL, old), predict(api, GENERAL, recent)
    for out in (old_out, recent_out):
        r = api.post(f"/models/{GENERAL}/feedback", concept_body(out["id"], [{"id": "cat"}], end_user_id="alice"))
        assert r.status_code == 200, r.text
    with core.db.transaction() as s:
        s.execute(update(Output).where(Output.id == old_out["id"])
                  .values(created_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=3)))
    assert core.predict.prune(dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)) == 0  # judged: kept
    r = api.delete("/feedback", params={"end_user_id": "alice"})
    assert r.status_code == 200 and r.json()["erased"] == 2, r.text
    assert not core.blobs.exists(digest_of(old))
    assert core.blobs.exists(digest_of(recent))


class _Interleaved:
    """A blob store through which another process's step runs at a chosen moment."""

    def __init__(self, store: BlobStore, **steps: Any) -> None:
        self.store = store
        self.steps = steps

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)
        step = self.steps.pop(name, None)
        if step is None:
            return method

        def then_step(*args: Any, **kw: Any) -> Any:
            out = method(*args, **kw)
            step()
            return out
        return then_step


def test_a_writer_that_commits_after_the_collector_deleted_puts_the_image_back(gc: tuple[VisionLoop, Api]) -> None:
    """Process A stores the image of a new input; before A commits the row, a collector in process B
    (the last input of the same image was just deleted) finds no row naming it and deletes it. A's
    check after its commit puts it back."""
    core, api = gc
    digest = digest_of(photo("chelsea"))
    collector = BlobCollector(core.db, core.blobs)
    core.inputs.blobs = _Interleaved(core.blobs, put=lambda: collector.collect([digest]))  # type: ignore[assignment]
    add(api, "kitty", photo("chelsea"))
    assert core.blobs.exists(digest)
    assert api.get("/inputs/kitty/image").content == photo("chelsea")


def test_a_collector_puts_back_an_image_a_row_came_to_name_while_it_deleted(gc: tuple[VisionLoop, Api]) -> None:
    """The collector's check found no row; a writer's row commits before its delete (the writer's own
    check already passed): the collector's second check sees the row and puts the bytes back."""
    core, api = gc
    data = photo("chelsea")
    digest = core.blobs.put(data)  # stored, no row yet: as a writer just before its commit

    def writer_commits() -> None:
        with core.db.transaction() as s:
            s.add(Input(app_id="shop", id="kitty", digest=digest, width=451, height=300, meta={}, status_code=30000))

    collector = BlobCollector(core.db, _Interleaved(core.blobs, delete=writer_commits))  # type: ignore[arg-type]
    assert collector.collect([digest]) == 0
    assert core.blobs.get(digest) == data


def test_a_failed_delete_loses_nothing_and_the_sweep_deletes_it_later(gc: tuple[VisionLoop, Api]) -> None:
    core, api = gc
    kept = add(api, "kept", png_bytes((10, 200, 10), (32, 32)))
    digest = add(api, "kitty", photo("chelsea"))

    def refuse(digest: str) -> None:
        raise BlobUnavailable("the store is down")

    real = core.inputs.collector.blobs
    core.inputs.collector.blobs = _Refusing(real, refuse)  # type: ignore[assignment]
    delete(api, "kitty")  # the row goes; the image stays, unreferenced
    assert core.blobs.exists(digest)
    core.inputs.collector.blobs = real
    env = {"VISIONLOOP_BLOB_STORE": core.settings.blob_store, "VISIONLOOP_BLOB_URL": core.settings.blob_url or ""}
    r = run_cli(core, "blobs", "sweep", "--older-than-hours", "1", env=env)
    assert r.returncode == 0 and "deleted 0 blobs" in r.stdout, r.stderr  # both written moments ago
    r = run_cli(core, "blobs", "sweep", "--older-than-hours", "0", env=env)
    assert r.returncode == 0 and "deleted 1 blobs no row refers to; 1 kept" in r.stdout, r.stderr
    assert not core.blobs.exists(digest) and core.blobs.exists(kept)


class _Refusing:
    def __init__(self, store: BlobStore, delete: Any) -> None:
        self.store = store
        self.delete = delete

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)
