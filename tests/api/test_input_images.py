"""Stored inputs' images are served to their app's key (or console session) with a digest ETag,
at the URL ``data.image.url`` names, built from VISIONLOOP_PUBLIC_BASE_URL when it is set."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from tests.helpers import Api, b64, png_bytes
from visionloop.core import VisionLoop
from visionloop.store.blobs import digest_of


def test_an_input_stored_from_bytes_links_its_image_served_with_a_digest_etag(api: Api) -> None:
    url = api.add_image("cat", (0, 128, 0))["data"]["image"]["url"]
    assert url == "http://testserver/v2/inputs/cat/image"
    r = api.client.get(url, headers=api.headers())
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == png_bytes((0, 128, 0))
    assert r.headers["etag"] == f'"{digest_of(r.content)}"' and "private" in r.headers["cache-control"]
    again = api.client.get(url, headers={**api.headers(), "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and not again.content and again.headers["etag"] == r.headers["etag"]
    stale = api.client.get(url, headers={**api.headers(), "If-None-Match": '"0000", W/"1111"'})
    assert stale.status_code == 200 and stale.content == r.content


def test_a_thumbnail_is_made_once_and_kept_beside_the_image(api: Api, core: VisionLoop) -> None:
    big = io.BytesIO()
    Image.new("RGB", (900, 300), (10, 20, 200)).save(big, "PNG")
    api.post("/inputs", {"inputs": [{"id": "wide", "data": {"image": {"base64": b64(big.getvalue())}}}]})
    r = api.get("/inputs/wide/image?size=thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (256, 85)
    digest = digest_of(big.getvalue())
    assert core.blobs.get_derived(digest, "thumb256") == r.content
    assert r.headers["etag"] == f'"{digest}-thumb256"'
    assert api.client.get("/v2/inputs/wide/image?size=thumbnail",
                          headers={**api.headers(), "If-None-Match": r.headers["etag"]}).status_code == 304


@pytest.mark.parametrize(("path", "code", "status"), [
    ("/inputs/nope/image", 404, 30102),
    ("/inputs/cat/image?size=huge", 400, 11102),
])
def test_bad_image_requests_are_refused_by_name(api: Api, path: str, code: int, status: int) -> None:
    api.add_image("cat")
    r = api.get(path)
    assert r.status_code == code and r.json()["status"]["code"] == status, r.text


def test_another_apps_key_or_no_key_gets_no_image(api: Api, other_api: Api, client: TestClient) -> None:
    api.add_image("cat")
    assert other_api.get("/inputs/cat/image").status_code == 404
    assert client.get("/v2/inputs/cat/image").status_code == 401
    assert client.get("/v2/inputs/cat/image", headers={"Cookie": "visionloop_session=forged.1.2.3"}
                      ).status_code == 401
    scoped = other_api.get(f"/users/me/apps/{api.app_id}/inputs/cat/image")
    assert scoped.status_code == 404 and scoped.json()["status"]["code"] == 11101


class TestBehindAProxy:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, Any]:
        return {"fetch_allow_hosts": "127.0.0.1", "public_base_url": "https://vision.example.com/api/"}

    def test_the_public_base_url_setting_builds_image_urls(self, api: Api) -> None:
        api.add_image("cat")
        for got in (api.get("/inputs/cat").json()["input"], api.get("/inputs").json()["inputs"][0]):
            assert got["data"]["image"]["url"] == "https://vision.example.com/api/v2/inputs/cat/image"


def test_a_thumbnail_the_store_cannot_keep_is_still_served(api: Api, core: VisionLoop,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeping it only saves the next request the work (a read-only folder, a refusing bucket)."""
    api.add_image("cat", (0, 128, 0))

    def refuse(digest: str, kind: str, data: bytes) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(core.blobs, "put_derived", refuse)
    r = api.client.get("/v2/inputs/cat/image", params={"size": "thumbnail"}, headers=api.headers())
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
