"""The security matrix: every route, every boundary an attacker can push on.

- Isolation: app B's key on app A's ids (inputs, concepts, outputs, searches, model versions,
  feedback) gets exactly the answer an id that never existed gets — never 200 with A's data, never
  a 403 that would confirm the id exists — and A's data is untouched afterwards.
- Keys: stored only as SHA-256 (the secret is nowhere in the data directory), never in a log line,
  a response or ``keys list``; a revoked key is refused on the very next request, also when another
  process revoked it.
- Scopes: every route needs exactly one scope; a key without it gets 403/11007, a key with only it
  gets past the check.
- SSRF: image URLs reaching loopback, private, link-local, metadata and other non-public
  addresses — as literals, as names resolving there, or behind a redirect from an allowed host —
  are refused through the HTTP API and no connection is made.
- Bombs and oversize bodies, against a real ``visionloop serve``: decompression bombs (PNG, JPEG
  headers claiming 100+ megapixels), over-limit images and bodies (declared or streamed) and a
  gzip-encoded body are refused while the server's peak RSS (VmHWM, reset before each request)
  grows by a bounded amount; the server's debug and access logs never show the key.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import http.server
import io
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from tests.helpers import Api, ImageServer, b64, clean_env, free_port, png_bytes
from visionloop.core import VisionLoop
from visionloop.http.app import APP_SCOPED, ROUTERS
from visionloop.http.routes import models as model_routes
from visionloop.ids import new_id
from visionloop.services.apps import SCOPES
from visionloop.services.fetch import ImageFetcher

REPO = Path(__file__).resolve().parents[1]
GENERAL = "aaa03c23b3724a16a56b629203edc62c"
PNG = b64(png_bytes((200, 40, 40), (24, 24)))


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """No allow-list: loopback is as forbidden to image URLs here as in production."""
    return {"feedback_rate_limit": 0}


def _scopes_of(dependant: Any) -> list[str]:
    """Scopes required by ``scoped`` dependencies (routes that check the key themselves say it as x-scope)."""
    out = []
    for dep in dependant.dependencies:
        name = getattr(dep.call, "__name__", "")
        if name.startswith("require_"):
            out.append(name.removeprefix("require_"))
        out += _scopes_of(dep)
    return out


def route_table() -> list[tuple[str, str, str]]:
    """(METHOD, full path, scope) of every route: the short path, the app-scoped copy, the user-scoped one."""
    out = []
    for router in ROUTERS:
        for route in router.routes:
            declared = {(route.openapi_extra or {}).get("x-scope", "")} - {""}
            (scope,) = set(_scopes_of(route.dependant)) | declared or {""}
            for method in sorted(route.methods):
                out += [(method, "/v2" + route.path, scope), (method, APP_SCOPED + route.path, scope)]
    for route in model_routes.user_router.routes:
        (scope,) = set(_scopes_of(route.dependant))
        out += [(method, "/v2/users/{user_id}" + route.path, scope) for method in sorted(route.methods)]
    return out


ROUTES = route_table()


def test_route_table_matches_the_schema_and_every_route_has_one_scope(client: TestClient) -> None:
    schema = {(m.upper(), p) for p, ops in client.app.openapi()["paths"].items() for m in ops}  # type: ignore[attr-defined]
    assert {(m, p) for m, p, _ in ROUTES} == schema
    assert all(scope in SCOPES for _, _, scope in ROUTES), [r for r in ROUTES if r[2] not in SCOPES]


# -- isolation between apps ------------------------------------------------------------------------
def seed_app(api: Api) -> dict[str, str]:
    """An input with a concept, a prediction, a search, feedback on both, a trained version: A's ids."""
    api.add_image("a-in-1", (200, 30, 30), concepts=[{"id": "a-concept", "value": True}])
    r = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": PNG}}}]})
    assert r.status_code == 200, r.text
    output_id = r.json()["outputs"][0]["id"]
    r = api.post("/searches", {"query": {"ands": [{"output": {"input": {"id": "a-in-1"}}}]}})
    assert r.status_code == 200, r.text
    search_id = r.json()["id"]
    r = api.post(f"/models/{GENERAL}/feedback", {"input": {"data": {"concepts": [{"id": "a-concept", "value": True}]},
                 "feedback_info": {"event_type": "annotation", "output_id": output_id, "end_user_id": "a-user",
                                   "session_id": "a-session"}}})
    assert r.status_code == 200, r.text
    r = api.post("/searches/feedback", {"input": {"id": "a-in-1", "feedback_info": {
        "event_type": "search_click", "search_id": search_id, "end_user_id": "a-user", "session_id": "a-session"}}})
    assert r.status_code == 200, r.text
    r = api.post(f"/models/{GENERAL}/versions", {})
    assert r.status_code == 200, r.text
    version_id = r.json()["model"]["model_version"]["id"]
    return {"input_id": "a-in-1", "concept_id": "a-concept", "output_id": output_id, "search_id": search_id,
            "version_id": version_id, "end_user_id": "a-user", "session_id": "a-session"}


def unknown_twins(ids: dict[str, str]) -> dict[str, str]:
    """Ids of the same shape that exist nowhere."""
    return {"input_id": "zz-in-1", "concept_id": "zz-concept", "output_id": new_id(), "search_id": new_id(),
            "version_id": new_id(), "end_user_id": "zz-user", "session_id": "zz-session"}


# Bodies and queries that name the ids (I: input, C: concept, O: output, S: search, U/E: end user/session)
BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/inputs"): {"inputs": [{"id": "{input_id}", "data": {"image": {"base64": PNG}}}]},
    ("PATCH", "/inputs"): {"action": "merge", "inputs": [{"id": "{input_id}", "data": {"concepts": [{"id": "x"}]}}]},
    ("DELETE", "/inputs"): {"ids": ["{input_id}"]},
    ("POST", "/concepts"): {"concepts": [{"id": "{concept_id}"}]},
    ("PATCH", "/concepts"): {"action": "overwrite", "concepts": [{"id": "{concept_id}", "name": "renamed"}]},
    ("POST", "/concepts/searches"): {"concept_query": {"name": "{concept_id}"}},
    ("POST", "/models"): {"model": {"id": "{concept_id}-model", "output_info": {"data": {"concepts": [
        {"id": "{concept_id}"}]}}}},
    ("POST", "/models/searches"): {"model_query": {"name": "general*"}},
    ("POST", "/models/{model_id}/outputs"): {"inputs": [{"id": "{input_id}"}]},
    ("POST", "/models/{model_id}/versions/{version_id}/outputs"): {"inputs": [{"id": "{input_id}"}]},
    ("POST", "/searches"): {"query": {"ands": [{"output": {"input": {"id": "{input_id}"}}}]}},
    ("POST", "/models/{model_id}/feedback"): {"input": {"id": "{input_id}", "data": {
        "concepts": [{"id": "{concept_id}", "value": True}]}, "feedback_info": {
        "event_type": "annotation", "output_id": "{output_id}", "end_user_id": "{end_user_id}",
        "session_id": "{session_id}"}}},
    ("POST", "/searches/feedback"): {"input": {"id": "{input_id}", "feedback_info": {
        "event_type": "search_click", "search_id": "{search_id}", "end_user_id": "{end_user_id}"}}},
    ("POST", "/models/{model_id}/versions"): {},
}
BODIES[("POST", "/models/{model_id}/versions/{version_id}/feedback")] = BODIES[("POST", "/models/{model_id}/feedback")]
QUERIES: dict[tuple[str, str], dict[str, str]] = {
    ("GET", "/feedback"): {"output_id": "{output_id}"},
    ("DELETE", "/feedback"): {"end_user_id": "{end_user_id}"},
}
EXTRA_QUERIES = [{"search_id": "{search_id}"}, {"end_user_id": "{end_user_id}"}, {"session_id": "{session_id}"},
                 {"version_id": "{version_id}"}]
# Routes that create in the caller's own app: run last, so that B's own copies cannot shadow A's ids.
CREATING = {("POST", "/inputs"), ("POST", "/concepts"), ("POST", "/models"), ("POST", "/models/{model_id}/versions")}


def _fill(template: Any, ids: dict[str, str]) -> Any:
    if isinstance(template, str):
        return re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), m.group(0)), template)
    if isinstance(template, dict):
        return {k: _fill(v, ids) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, ids) for v in template]
    return template


def _short(path: str) -> str:
    return re.sub(r"^/v2(/users/\{user_id\}(/apps/\{app_id\})?)?", "", path)


def _send(api: Api, method: str, path: str, ids: dict[str, str], query: dict[str, str] | None = None) -> Any:
    route = (method, _short(path))
    fixed = {"user_id": "me", "app_id": api.app_id, "model_id": GENERAL}  # model ids are global, not A's
    url = _fill(path, {**ids, **fixed}).removeprefix("/v2")
    params = _fill(query if query is not None else QUERIES.get(route, {}), ids)
    return api.request(method, url, _fill(BODIES.get(route, {}), ids), params=params)


def _answer(r: Any, ids: dict[str, str], twins: dict[str, str]) -> tuple[int, int, str]:
    status = r.json()["status"]
    details = status.get("details", "")
    for key, value in ids.items():
        details = details.replace(value, twins[key])
    return r.status_code, status["code"], details if r.status_code >= 300 else ""


def test_another_apps_ids_answer_as_if_absent(api: Api, other_api: Api) -> None:
    a = seed_app(api)
    twins = unknown_twins(a)
    counts = other_api.get("/inputs/status").json()["counts"]
    assert counts == {"processed": 0, "to_process": 0, "errors": 0, "processing": 0}

    routes = sorted({(m, p) for m, p, _ in ROUTES}, key=lambda mp: ((mp[0], _short(mp[1])) in CREATING, mp))
    for method, path in routes:
        queries = [None] + (EXTRA_QUERIES if (method, _short(path)) == ("GET", "/feedback") else [])
        for query in queries:
            mine = _send(other_api, method, path, a, query)
            absent = _send(other_api, method, path, twins, query)
            where = (method, path, query, mine.text[:300])
            assert mine.status_code != 403 and mine.json()["status"]["code"] != 11007, where
            assert mine.status_code < 500, where
            assert _answer(mine, a, twins) == _answer(absent, twins, twins), (where, absent.text[:300])
            if any(f"{{{name}}}" in path for name in ("input_id", "concept_id", "version_id")):
                assert mine.status_code == 404, where
            sent = mine.request.url.query.decode() + str(mine.request.url.path) + mine.request.content.decode()
            leaked = [v for v in a.values() if v in mine.text and v not in sent]
            assert not leaked, (where, leaked)

    # and A still has all of it
    assert api.get("/inputs/a-in-1").status_code == 200
    assert api.get("/concepts/a-concept").status_code == 200
    assert api.get(f"/models/{GENERAL}/versions/{a['version_id']}").status_code == 200
    log = api.get("/feedback", params={"session_id": "a-session"}).json()["feedback"]
    assert len(log) == 2 and {e["end_user_id"] for e in log} == {"a-user"}


def test_an_app_scoped_path_naming_another_app_is_unknown(api: Api, other_api: Api) -> None:
    seed = api.add_image("a-in-2")
    r = other_api.client.get(f"/v2/users/me/apps/{api.app_id}/inputs/{seed['id']}", headers=other_api.headers())
    assert r.status_code == 404 and r.json()["status"]["code"] == 11101
    r2 = other_api.client.get("/v2/users/me/apps/no-such-app/inputs/x", headers=other_api.headers())
    assert (r2.status_code, r2.json()["status"]["code"]) == (404, 11101)


# -- keys --------------------------------------------------------------------------------------------
def _cli(data: Path, *args: str, database_url: str = "") -> subprocess.CompletedProcess[str]:
    env = clean_env()
    where = ["--data-dir", str(data)] + (["--database-url", database_url] if database_url else [])
    return subprocess.run([sys.executable, "-m", "visionloop", *args, *where], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


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
    listing = _cli(data, "keys", "list", "--app", "keys", database_url=core.settings.database_url)
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
            done = _cli(core.settings.data_dir, "keys", "revoke", info.id, database_url=core.settings.database_url)
            assert done.returncode == 0, done.stderr
        else:
            core.apps.revoke_key(info.id)
        for method, url in [("GET", "/v2/inputs"), ("GET", f"/v2/models/{GENERAL}"),
                            ("POST", "/v2/searches"), ("GET", "/v2/feedback")]:
            r = client.request(method, url, headers=auth, json={})
            assert (r.status_code, r.json()["status"]["code"]) == (401, 11008), (method, url, r.text)


# -- scopes ------------------------------------------------------------------------------------------
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


# -- SSRF through the API ----------------------------------------------------------------------------
class Recording(httpx.BaseTransport):
    """The real transport, remembering every request that reached it."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.sent: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(str(request.url))
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


NAMES = {"localhost": ["127.0.0.1"], "internal.example.com": ["10.1.2.3"], "printer.example.com": ["192.168.7.7"],
         "mixed.example.com": ["93.184.216.34", "10.9.9.9"], "metadata.example.com": ["169.254.169.254"],
         "v6loop.example.com": ["::1"], "mapped.example.com": ["::ffff:10.0.0.1"], "cgnat.example.com": ["100.64.1.1"]}


def _resolver(calls: list[str]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host in NAMES:
            return NAMES[host]
        raise OSError(f"{host}: no such name here")
    return resolve


@pytest.fixture
def guarded_fetch(core: VisionLoop) -> Iterator[tuple[Recording, list[str]]]:
    """The core's fetcher with the production rules, a resolver we control and a recording transport."""
    transport, calls = Recording(), []
    old = core.loader.fetcher
    core.loader.fetcher = ImageFetcher(timeout=5, max_bytes=core.settings.max_image_bytes, max_redirects=3,
                                       allow=core.settings.fetch_allow_hosts, transport=transport,
                                       resolver=_resolver(calls))
    yield transport, calls
    core.loader.fetcher.close()
    core.loader.fetcher = old


def _url_surfaces(url: str) -> list[tuple[str, str, dict]]:
    return [("POST", "/inputs", {"inputs": [{"data": {"image": {"url": url}}}]}),
            ("POST", f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"url": url}}}]}),
            ("POST", "/searches", {"query": {"ands": [{"output": {"input": {"data": {"image": {"url": url}}}}}]}})]


def test_image_urls_to_non_public_addresses_are_refused(api: Api, image_server: ImageServer,
                                                        guarded_fetch: tuple[Recording, list[str]]) -> None:
    transport, calls = guarded_fetch
    loopback = image_server.url("/cat.png", png_bytes())
    port = loopback.split(":")[2].split("/")[0]
    urls = [loopback, f"http://localhost:{port}/cat.png", "http://10.0.0.1/a.png", "http://172.16.5.4/a.png",
            "http://192.168.1.1/a.png", "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "http://[::1]/a.png", "http://[fe80::1]/a.png", "http://[fd00::1]/a.png", "http://0.0.0.0/a.png",
            "http://[::ffff:127.0.0.1]/a.png", "http://100.64.0.1/a.png", "http://2130706433/a.png",
            "http://0x7f000001/a.png", "http://127.1/a.png", "http://017700000001/a.png",
            "http://user:pw@93.184.216.34/a.png", "file:///etc/passwd", "ftp://93.184.216.34/a.png",
            "gopher://127.0.0.1:6379/_INFO"] + [f"http://{name}/a.png" for name in NAMES]
    for url in urls:
        for method, path, body in _url_surfaces(url):
            r = api.request(method, path, body)
            where = (url, path, r.text[:300])
            status = r.json()["status"]
            assert r.status_code == 400, where
            assert status["code"] in (30106, 40002), where  # INPUT_INVALID_URL (in a search: SEARCH_INVALID)
            details = status.get("details", "") + str(r.json().get("inputs", r.json().get("outputs", "")))
            for private in ("10.1.2.3", "192.168.7.7", "10.9.9.9", "169.254.169.254", "100.64.1.1"):
                if private not in url:
                    assert private not in details, where  # a name's internal address is never echoed
    assert transport.sent == [], transport.sent
    assert api.get("/inputs").json()["inputs"] == []
    assert set(NAMES) <= set(calls)


class _Redirector(http.server.ThreadingHTTPServer):
    """A loopback server answering every GET with a redirect to ``target`` (and counting the hits)."""

    def __init__(self, target: str) -> None:
        hits: list[str] = []
        self.hits = hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                hits.append(self.path)
                self.send_response(302)
                self.send_header("Location", target)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.8:8080/admin",
                                    "http://internal.example.com/a.png", "http://[::1]:22/", "file:///etc/passwd"])
def test_a_redirect_from_an_allowed_host_to_a_private_address_is_refused(
        api: Api, core: VisionLoop, target: str) -> None:
    transport, calls = Recording(), []
    old = core.loader.fetcher
    core.loader.fetcher = ImageFetcher(timeout=5, max_bytes=core.settings.max_image_bytes, max_redirects=3,
                                       allow=["127.0.0.1"], transport=transport, resolver=_resolver(calls))
    redirector = _Redirector(target)
    try:
        start = f"http://127.0.0.1:{redirector.server_address[1]}/img.png"
        for method, path, body in _url_surfaces(start):
            r = api.request(method, path, body)
            assert r.status_code == 400 and r.json()["status"]["code"] in (30106, 40002), (path, r.text)
        assert len(redirector.hits) == 3  # the allowed hop was fetched, once per surface ...
        assert all(url.startswith("http://127.0.0.1:") for url in transport.sent), transport.sent  # ... nothing else
    finally:
        redirector.shutdown()
        redirector.server_close()
        core.loader.fetcher.close()
        core.loader.fetcher = old


# -- bombs and oversize bodies, against a real server ------------------------------------------------
MAX_BODY = 2_000_000
MAX_IMAGE = 1_000_000
GROWTH_LIMIT = 40 * 2**20  # decoding any of the bombs would take 100+ MiB




class RealServer:
    def __init__(self, tmp: Path) -> None:
        self.data, self.log_path = tmp / "data", tmp / "server.log"
        for args in (("apps", "create", "sec"),):
            done = _cli(self.data, *args)
            assert done.returncode == 0, done.stderr
        made = _cli(self.data, "keys", "create", "--app", "sec")
        assert made.returncode == 0, made.stderr
        self.key = made.stdout.strip().splitlines()[-1]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = clean_env(VISIONLOOP_MAX_BODY_BYTES=str(MAX_BODY), VISIONLOOP_MAX_IMAGE_BYTES=str(MAX_IMAGE),
                        VISIONLOOP_FEEDBACK_RATE_LIMIT="0")
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "visionloop", "serve", "--port", str(self.port),
                                      "--data-dir", str(self.data), "--log-level", "debug", "--access-log"],
                                     cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()[-2000:]
            try:
                if httpx.get(self.url + "/v2/models", headers=self.auth, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("the server did not start")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.key}"}

    def _status(self) -> dict[str, int]:
        text_ = Path(f"/proc/{self.proc.pid}/status").read_text()
        return {k: int(v.split()[0]) * 1024 for k, v in re.findall(r"^(VmHWM|VmRSS):\s+(.*)$", text_, re.M)}

    def peak_growth(self, action: Any) -> tuple[Any, int]:
        """Run ``action``; return its result and how far the server's peak RSS rose above its RSS before."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = self._status()["VmRSS"]
        result = action()
        time.sleep(0.2)
        return result, self._status()["VmHWM"] - before

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    server = RealServer(tmp_path_factory.mktemp("security"))
    yield server
    server.stop()


@functools.cache
def png_bomb(width: int, height: int) -> bytes:
    """A valid greyscale PNG of ``width`` x ``height`` zeros: a few hundred KiB claiming ``width*height`` bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header claims ``width`` x ``height``."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 10)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _post(server: RealServer, path: str, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers=server.auth, timeout=60, **kw)


@pytest.mark.slow
def test_the_memory_probe_sees_a_real_decode(real_server: RealServer) -> None:
    """Control: a legitimate 2400x2400 image (17 MB decoded, a few KiB sent) does move the peak."""
    small = {"inputs": [{"data": {"image": {"base64": PNG}}}]}
    for path in ("/v2/inputs", f"/v2/models/{GENERAL}/outputs"):  # the models are loaded: not measured below
        assert _post(real_server, path, small).status_code == 200
    big = b64(png_bytes((90, 90, 90), (2400, 2400)))
    r, growth = real_server.peak_growth(lambda: _post(real_server, f"/v2/models/{GENERAL}/outputs",
                                                      {"inputs": [{"data": {"image": {"base64": big}}}]}))
    assert r.status_code == 200, r.text
    assert growth > 10 * 2**20, growth


@pytest.mark.slow
@pytest.mark.parametrize("name", ["png-144MP", "jpeg-900MP", "png-over-image-bytes"])
@pytest.mark.parametrize("route", ["inputs", "predict"])
def test_bombs_are_refused_before_decoding(real_server: RealServer, name: str, route: str) -> None:
    data = {"png-144MP": lambda: png_bomb(12_000, 12_000), "jpeg-900MP": lambda: jpeg_claiming(30_000, 30_000),
            "png-over-image-bytes": lambda: os.urandom(MAX_IMAGE + 1000)}[name]()
    assert len(base64.b64encode(data)) < MAX_BODY
    body = {"inputs": [{"data": {"image": {"base64": b64(data)}}}]}
    path = "/v2/inputs" if route == "inputs" else f"/v2/models/{GENERAL}/outputs"
    r, growth = real_server.peak_growth(lambda: _post(real_server, path, body))
    assert r.status_code == 400, r.text
    assert r.json()["status"]["code"] == 30105, r.text  # INPUT_OVER_LIMIT
    assert growth < GROWTH_LIMIT, f"peak RSS rose {growth / 2**20:.0f} MiB"


@pytest.mark.slow
def test_oversize_bodies_are_cut_off(real_server: RealServer) -> None:
    # declared: refused from the headers alone, before a byte of body is read
    with socket.create_connection(("127.0.0.1", real_server.port), timeout=30) as s:
        s.sendall(b"POST /v2/inputs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Key " + real_server.key.encode() + b"\r\nContent-Length: 500000000\r\n\r\n")
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]

    # streamed (chunked, no length): 60 MB offered, the server answers 413 once it passes the limit
    def stream() -> Iterator[bytes]:
        yield b'{"inputs": ['
        for _ in range(600):
            yield b" " * 100_000

    def send() -> int:
        try:
            return httpx.post(real_server.url + "/v2/inputs", content=stream(), headers=real_server.auth,
                              timeout=60).status_code
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):  # closed while we still wrote:
            return 413                                                            # also a refusal

    code, growth = real_server.peak_growth(send)
    assert code == 413
    assert real_server.proc.poll() is None  # refused, not crashed
    assert growth < GROWTH_LIMIT, f"peak RSS rose {growth / 2**20:.0f} MiB"


@pytest.mark.slow
def test_a_gzip_body_is_not_inflated(real_server: RealServer) -> None:
    """A 100 MB body gzipped to ~100 KB: the server does not decompress request bodies at all."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as gz:
        gz.write(b'{"inputs": [')
        for _ in range(100):
            gz.write(b" " * 1_000_000)
        gz.write(b"]}")
    bomb = buf.getvalue()

    def send() -> httpx.Response:
        return httpx.post(real_server.url + "/v2/inputs", content=bomb, timeout=60,
                          headers={**real_server.auth, "Content-Encoding": "gzip",
                                   "Content-Type": "application/json"})

    r, growth = real_server.peak_growth(send)
    assert r.status_code == 400 and r.json()["status"]["code"] in (11100, 11102), r.text
    assert growth < GROWTH_LIMIT, f"peak RSS rose {growth / 2**20:.0f} MiB"


@pytest.mark.slow
def test_the_server_logs_never_show_the_key(real_server: RealServer) -> None:
    """Debug logging and the access log on, requests good and bad with the key: it is never written."""
    for method, path, body in [("GET", "/v2/inputs", None), ("POST", "/v2/inputs", {"inputs": [{"id": "x"}]}),
                               ("GET", f"/v2/models/{GENERAL}", None), ("GET", "/v2/nowhere", None),
                               ("POST", "/v2/searches", {"query": {"ands": [{"output": {"input": {"id": "x"}}}]}})]:
        httpx.request(method, real_server.url + path, json=body, headers=real_server.auth, timeout=60)
    httpx.get(real_server.url + "/v2/inputs", headers={"Authorization": f"Key {real_server.key}-wrong"}, timeout=30)
    time.sleep(0.5)
    log = real_server.log_path.read_text(errors="replace")
    assert "/v2/inputs" in log  # the access log is on: we are looking at the right place
    assert real_server.key not in log
    listing = _cli(real_server.data, "keys", "list")
    assert listing.returncode == 0 and "sec" in listing.stdout
    assert real_server.key not in listing.stdout + listing.stderr
