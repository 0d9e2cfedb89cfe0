"""Keys: stored only as SHA-256 (the secret is nowhere in the data directory), never in a log line,
a response or ``keys list``; a revoked key is refused on the very next request, also when another
process revoked it."""

from __future__ import annotations

import hashlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from tests.security.support import GENERAL, run_cli
from visionloop.core import VisionLoop


def test_keys_are_stored_hashed_and_never_logged_or_echoed(core: VisionLoop, client: TestClient,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    import logging

    core.apps.create_app("keys")
    info, secret = core.apps.create_key("keys", ("inputs",))
    _, scopeless = core.apps.create_key("keys", ())
    revoked_info, revoked = core.apps.create_key("keys")
    core.apps.revoke_key(revoked_info.id)
    with core.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM api_keys")).mappings().all()
    assert {r["key_hash"] for r in rows} >= {hashlib.sha256(s.encode()).hexdigest() for s in (secret, revoked)}
    assert not any(s in str(value) for r in rows for value in r.values() for s in (secret, scopeless, revoked))
    assert secret not in repr(info) and "*" in repr(secret)

    caplog.set_level(logging.DEBUG)
    answers = []
    for key in (secret, scopeless, revoked, "0" * 32, secret + "x"):
        auth = {"Authorization": f"Key {key}"}
        for method, url, body in [("GET", "/v2/inputs", None), ("POST", "/v2/inputs", {"inputs": [{"id": "k"}]}),
                                  ("POST", "/v2/inputs", b"{not json"), ("GET", "/v2/inputs/none", None),
                                  ("GET", "/v2/users/me/apps/other/inputs", None), ("GET", "/v2/nowhere", None),
                                  ("POST", f"/v2/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {
                                      "url": "http://10.0.0.1/a.png"}}}]})]:
            kw = {"content": body} if isinstance(body, bytes) else {"json": body}
            answers.append(client.request(method, url, headers=auth, **kw).text)
        answers.append(client.get("/v2/inputs", headers={"Authorization": f"Bearer {key}"}).text)
        answers.append(client.get("/v2/inputs", headers={"Authorization": key}).text)
    for key in (secret, scopeless, revoked, "0" * 32):
        assert key not in caplog.text
        assert not [a for a in answers if key in a]

    data = core.settings.data_dir
    listing = run_cli(data, "keys", "list", "--app", "keys", database_url=core.settings.database_url)
    assert listing.returncode == 0, listing.stderr
    assert info.id in listing.stdout and revoked_info.id in listing.stdout
    assert not any(s in listing.stdout + listing.stderr for s in (secret, scopeless, revoked))
    stored = b"".join(p.read_bytes() for p in data.rglob("*") if p.is_file())
    assert not any(s.encode() in stored for s in (secret, scopeless, revoked))


def test_a_revoked_key_stops_at_once(core: VisionLoop, client: TestClient) -> None:
    core.apps.create_app("revoke")
    for by_cli in (False, True):
        info, secret = core.apps.create_key("revoke")
        auth = {"Authorization": f"Key {secret}"}
        assert client.get("/v2/inputs", headers=auth).status_code == 200
        if by_cli:  # another process revokes while this app keeps running
            done = run_cli(core.settings.data_dir, "keys", "revoke", info.id, database_url=core.settings.database_url)
            assert done.returncode == 0, done.stderr
        else:
            core.apps.revoke_key(info.id)
        for method, url in [("GET", "/v2/inputs"), ("GET", f"/v2/models/{GENERAL}"),
                            ("POST", "/v2/searches"), ("GET", "/v2/feedback")]:
            r = client.request(method, url, headers=auth, json={})
            assert (r.status_code, r.json()["status"]["code"]) == (401, 11008), (method, url, r.text)
