"""Keys, scopes, app-scoped paths and cross-app isolation."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tests.conftest import make_api
from tests.helpers import Api
from visionloop.core import VisionLoop
from visionloop.services.apps import AppService
from visionloop.services.short_cache import TTL_SECONDS


def test_missing_and_unknown_keys(client: TestClient) -> None:
    r = client.get("/v2/inputs")
    assert r.status_code == 401 and r.json()["status"]["code"] == 11009
    r = client.get("/v2/inputs", headers={"Authorization": "Key not-a-real-key"})
    assert r.status_code == 401 and r.json()["status"]["code"] == 11009  # Clarifai's 'API key not found'
    r = client.get("/v2/inputs", headers={"Authorization": "Bearer abc"})
    assert r.status_code == 401 and r.json()["status"]["code"] == 11008


def test_revoked_key_stops_at_once(core: VisionLoop, api: Api) -> None:
    assert api.get("/inputs").status_code == 200
    key_id = core.apps.list_keys("app-a")[0].id
    core.apps.revoke_key(key_id)
    assert api.get("/inputs").status_code == 401


def test_key_revoked_by_another_process_stops_within_the_cache_ttl(core: VisionLoop, api: Api) -> None:
    """The CLI revoking a key of a running server: a moment later the server refuses it too."""
    assert api.get("/inputs").status_code == 200  # the key's caller is now cached in this process
    elsewhere = AppService(core.db)  # another process's view of the same database (its own cache)
    elsewhere.revoke_key(elsewhere.list_keys("app-a")[0].id)
    time.sleep(TTL_SECONDS + 0.1)
    r = api.get("/inputs")
    assert r.status_code == 401 and r.json()["status"]["code"] == 11008, r.text


def test_keys_are_stored_hashed(core: VisionLoop, api: Api) -> None:
    from sqlalchemy import text

    with core.db.session() as s:
        stored = [row[0] for row in s.execute(text("SELECT key_hash FROM api_keys"))]
    assert api.key not in stored and len(stored[0]) == 64
    assert api.key not in repr(core.apps.list_keys())


@pytest.mark.parametrize("method,path,scope", [
    ("GET", "/inputs", "inputs"), ("GET", "/concepts", "concepts"), ("GET", "/models", "models"),
])
def test_scopes_enforced(core: VisionLoop, client: TestClient, method: str, path: str, scope: str) -> None:
    others = tuple(s for s in ("inputs", "concepts", "models", "predict", "search", "feedback") if s != scope)
    limited = make_api(core, client, "app-a", others)
    r = limited.request(method, path)
    assert r.status_code == 403 and r.json()["status"]["code"] == 11007
    assert scope in r.json()["status"]["details"]


def test_app_scoped_paths(api: Api) -> None:
    api.add_image("scoped")
    r = api.client.get("/v2/users/me/apps/app-a/inputs/scoped", headers=api.headers(),
                       params={"user_app_id.user_id": "me", "user_app_id.app_id": "app-a"})
    assert r.status_code == 200 and r.json()["input"]["id"] == "scoped"
    r = api.client.get("/v2/users/me/apps/app-b/inputs/scoped", headers=api.headers())
    assert r.status_code == 404 and r.json()["status"]["code"] == 11101


def test_other_app_cannot_see_or_change(api: Api, other_api: Api) -> None:
    api.add_image("secret", concepts=[{"id": "private"}])
    assert other_api.get("/inputs/secret").status_code == 404
    assert other_api.get("/inputs").json()["inputs"] == []
    assert other_api.get("/concepts").json()["concepts"] == []
    assert other_api.get("/concepts/private").status_code == 404
    assert other_api.delete("/inputs/secret").status_code == 404
    assert other_api.patch("/inputs", {"inputs": [{"id": "secret", "data": {"concepts": [{"id": "x"}]}}]}
                           ).status_code == 404
    # the same id is free in the other app
    other_api.add_image("secret")
    assert api.get("/inputs/secret").json()["input"]["data"]["concepts"][0]["id"] == "private"
