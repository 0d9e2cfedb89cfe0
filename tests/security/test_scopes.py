"""Scopes: every route needs exactly one scope; a key without it gets 403/11007, a key with only it
gets past the check."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.security.support import GENERAL, ROUTES
from visionloop.core import VisionLoop
from visionloop.services.apps import SCOPES


def test_route_table_matches_the_schema_and_every_route_has_one_scope(client: TestClient) -> None:
    schema = {(m.upper(), p) for p, ops in client.app.openapi()["paths"].items() for m in ops}  # type: ignore[attr-defined]
    assert {(m, p) for m, p, _ in ROUTES} == schema
    assert all(scope in SCOPES for _, _, scope in ROUTES), [r for r in ROUTES if r[2] not in SCOPES]


def test_every_route_enforces_its_scope(core: VisionLoop, client: TestClient) -> None:
    core.apps.create_app("scopes")
    only = {s: core.apps.create_key("scopes", (s,))[1] for s in SCOPES}
    all_but = {s: core.apps.create_key("scopes", tuple(x for x in SCOPES if x != s))[1] for s in SCOPES}

    def call(method: str, path: str, key: str) -> tuple[int, int]:
        url = path.replace("{user_id}", "me").replace("{app_id}", "scopes").replace("{model_id}", GENERAL)
        url = re.sub(r"\{\w+\}", "does-not-exist", url)
        r = client.request(method, url, headers={"Authorization": f"Key {key}"}, json={})
        assert r.status_code < 500, (method, url, r.text)
        return r.status_code, r.json()["status"]["code"]

    for method, path, scope in ROUTES:
        assert call(method, path, all_but[scope]) == (403, 11007), (method, path, scope)
        assert call(method, path, only[scope])[0] != 403, (method, path, scope)
        other = SCOPES[(SCOPES.index(scope) + 1) % len(SCOPES)]
        assert call(method, path, only[other]) == (403, 11007), (method, path, other)
