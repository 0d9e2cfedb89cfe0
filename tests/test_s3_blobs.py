"""Image bytes in an S3-compatible store (a real SeaweedFS server), and a stored input whose image
is missing from either store: a clear Clarifai error naming the input, never a 500."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError
from fastapi.testclient import TestClient

from tests.conftest import make_api
from tests.helpers import Api, b64, clean_env, photo
from visionloop.config import SettingsError, load_settings
from visionloop.core import VisionLoop
from visionloop.http.app import create_app
from visionloop.inference.runtime import ModelRuntime
from visionloop.store.blobs import blob_key
from visionloop.store.s3_blobs import S3BlobStore

GENERAL = "aaa03c23b3724a16a56b629203edc62c"
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def s3_core(tmp_path: Path, blob_url: str, runtime: ModelRuntime) -> Iterator[VisionLoop]:
    core = VisionLoop(load_settings({"data_dir": tmp_path / "data", "blob_store": "s3", "blob_url": blob_url},
                                    environ={}), runtime)
    yield core
    core.close()


@pytest.fixture
def s3_api(s3_core: VisionLoop) -> Iterator[Api]:
    with TestClient(create_app(s3_core.settings, s3_core), raise_server_exceptions=False) as client:
        yield make_api(s3_core, client, "shop")


def _delete_by_hand(core: VisionLoop, digest: str) -> None:
    """What an operator (or a data folder not shared) does behind the server's back, while rows still
    name the blob (the server deletes only blobs no row names: tests/store/test_blob_gc.py)."""
    store = core.blobs
    if isinstance(store, S3BlobStore):
        store.client.delete_object(Bucket=store.bucket, Key=f"{store.prefix}/{blob_key(digest)}")
    else:
        (core.settings.data_dir / "blobs" / blob_key(digest)).unlink()


def _missing_image_answer(api: Api, input_id: str) -> None:
    r = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"id": input_id}]})
    assert r.status_code != 500
    output = r.json()["outputs"][0]
    assert output["status"]["code"] == 30002
    assert f"input {input_id!r}" in output["status"]["details"]


def test_inputs_keep_their_images_in_the_bucket_and_predict_reads_them(s3_core: VisionLoop, s3_api: Api) -> None:
    r = s3_api.post("/inputs", {"inputs": [{"id": "kitty", "data": {"image": {"base64": b64(photo("chelsea"))}}}]})
    assert r.status_code == 200
    digest = s3_core.inputs.get("shop", "kitty").row.digest
    store = s3_core.blobs
    assert isinstance(store, S3BlobStore)
    listed = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix + "/")["Contents"]
    assert [o["Key"] for o in listed] == [f"{store.prefix}/{digest[:2]}/{digest[2:4]}/{digest}"]
    assert not (s3_core.settings.data_dir / "blobs").exists()  # nothing on the local disk
    r = s3_api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"id": "kitty"}]})
    assert r.status_code == 200 and r.json()["outputs"][0]["input"]["id"] == "kitty"


def test_an_image_gone_from_the_bucket_is_a_clear_error(s3_core: VisionLoop, s3_api: Api) -> None:
    s3_api.post("/inputs", {"inputs": [{"id": "kitty", "data": {"image": {"base64": b64(photo("chelsea"))}}}]})
    _delete_by_hand(s3_core, s3_core.inputs.get("shop", "kitty").row.digest)
    _missing_image_answer(s3_api, "kitty")


def test_an_image_missing_from_this_servers_folder_is_a_clear_error(core: VisionLoop, api: Api) -> None:
    """Two servers on one database with separate data folders: the one without the file."""
    api.post("/inputs", {"inputs": [{"id": "kitty", "data": {"image": {"base64": b64(photo("chelsea"))}}}]})
    _delete_by_hand(core, core.inputs.get(api.app_id, "kitty").row.digest)
    _missing_image_answer(api, "kitty")


def test_an_unusable_bucket_is_refused_at_start(s3_server: object, blob_url: str) -> None:
    with pytest.raises(SettingsError, match="bucket 'no-such-bucket' is not usable"):
        S3BlobStore("s3://no-such-bucket/x")
    with pytest.raises(SettingsError, match="VISIONLOOP_BLOB_STORE=s3 needs VISIONLOOP_BLOB_URL"):
        load_settings({"blob_store": "s3"}, environ={})


def test_blobs_migrate_copies_a_folder_into_the_bucket_and_resumes(tmp_path: Path, blob_url: str,
                                                                     runtime: ModelRuntime) -> None:
    local = VisionLoop(load_settings({"data_dir": tmp_path / "data"}, environ={}), runtime)
    with TestClient(create_app(local.settings, local), raise_server_exceptions=False) as client:
        api = make_api(local, client, "shop")
        for n, name in enumerate(("chelsea", "coffee")):
            api.post("/inputs", {"inputs": [{"id": f"in-{n}", "data": {"image": {"base64": b64(photo(name))}}}]})
    local.close()
    env = clean_env(VISIONLOOP_BLOB_URL=blob_url)
    first = run(["--data-dir", str(tmp_path / "data")], env)
    assert first.returncode == 0, first.stderr
    assert "copied 2 blobs" in first.stdout and "copying blobs into S3: 2/2 (100%)" in first.stderr
    again = run(["--data-dir", str(tmp_path / "data")], env)
    assert "copied 0 blobs" in again.stdout and "(2 were there already)" in again.stdout

    moved = VisionLoop(load_settings({"data_dir": tmp_path / "data", "blob_store": "s3", "blob_url": blob_url},
                                     environ={}), runtime)
    try:
        (tmp_path / "data" / "blobs").rename(tmp_path / "old-blobs")  # the folder is not needed any more
        with TestClient(create_app(moved.settings, moved), raise_server_exceptions=False) as client:
            r = Api(client, api.key, "shop").post(f"/models/{GENERAL}/outputs", {"inputs": [{"id": "in-1"}]})
        assert r.status_code == 200, r.text
    finally:
        moved.close()


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "visionloop", "blobs", "migrate", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_an_upload_the_store_refuses_leaves_no_input(s3_core: VisionLoop, s3_api: Api,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**_: object) -> None:
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    monkeypatch.setattr(s3_core.blobs, "client", _Refusing(s3_core.blobs.client, refuse))  # type: ignore[attr-defined]
    r = s3_api.post("/inputs", {"inputs": [{"id": "kitty", "data": {"image": {"base64": b64(photo("chelsea"))}}}]})
    assert r.status_code == 503
    assert r.json()["inputs"][0]["status"]["code"] == 10020
    assert "not stored" in r.json()["inputs"][0]["status"]["details"]
    assert s3_api.get("/inputs/kitty").status_code == 404


class _Refusing:
    """An S3 client whose uploads fail as when the store is unreachable."""

    def __init__(self, client: object, put_object: object) -> None:
        self._client = client
        self.put_object = put_object

    def __getattr__(self, name: str) -> object:
        return getattr(self._client, name)


def test_thumbnails_are_kept_in_the_bucket_and_a_gone_image_is_a_clear_error(s3_core: VisionLoop,
                                                                              s3_api: Api) -> None:
    s3_api.post("/inputs", {"inputs": [{"id": "kitty", "data": {"image": {"base64": b64(photo("chelsea"))}}}]})
    digest = s3_core.inputs.get("shop", "kitty").row.digest
    first = s3_api.get("/inputs/kitty/image", params={"size": "thumbnail"})
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    store = s3_core.blobs
    assert isinstance(store, S3BlobStore)
    assert store.get_derived(digest, "thumb256") == first.content
    _delete_by_hand(s3_core, digest)
    r = s3_api.get("/inputs/kitty/image")
    assert r.status_code == 404 and r.json()["status"]["code"] == 30002, r.text
    assert "input 'kitty'" in r.json()["status"]["details"]
