"""Replay the requests the official clients really sent (shared/wire/*.json) against a live server.

Each capture file is replayed in its recorded order (later requests read what earlier ones
wrote), with method, path, query, headers and body as recorded, except: the Authorization of
the capture's key (``Key selftest-key``) becomes our key (other keys, deliberately wrong ones,
are kept), and app-scoped paths, query strings and bodies are pointed at the live app. A
request is replayed when its route is in ENABLED_ROUTES; the expected answer is the recorded
HTTP status, and for a 200 the status code 10000 in the body.

When predict, search and feedback land, move their patterns from PENDING_ROUTES to
ENABLED_ROUTES. Feedback refers to output ids and search ids that the recording server made:
enabling it needs ``Replay`` to rewrite those ids to the ones our server answered for the
preceding predict/search, so it stays pending until that is written.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.clients.live import LiveServer

WIRE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "wire"
RECORDED_APP = "selftest-app"
RECORDED_AUTH = "Key selftest-key"
APP_SCOPED = re.compile(r"^/v2/users/(?P<user>[^/]+)/apps/(?P<app>[^/]+)(?P<rest>/.*)$")

# (method, route below /v2 once an app-scoped prefix is removed), matched in full.
ENABLED_ROUTES: set[tuple[str, str]] = {
    ("POST", r"/inputs"),
    ("GET", r"/inputs"),
    ("PATCH", r"/inputs"),
    ("DELETE", r"/inputs"),
    ("GET", r"/inputs/status"),
    ("GET", r"/inputs/[^/]+"),
    ("DELETE", r"/inputs/[^/]+"),
    ("POST", r"/concepts"),
    ("GET", r"/concepts"),
    ("PATCH", r"/concepts"),
    ("GET", r"/concepts/[^/]+"),
    ("POST", r"/concepts/searches"),
    ("GET", r"/models"),
}

# Captured but not replayed yet: the routes do not exist (or are being written).
PENDING_ROUTES: dict[tuple[str, str], str] = {
    # py2.json expects 200 for GET /v2/models/logo (the recording server knew the name) while
    # py2_name_404_fallback.json expects 404 and then POST /v2/models/searches: enable with care.
    ("GET", r"/models/[^/]+"): "model lookup by id or name",
    ("POST", r"/models/searches"): "model search by name/type (JS predict({name}), py2 fallback)",
    ("POST", r"/models/[^/]+/outputs"): "predict",
    ("POST", r"/models/[^/]+/versions/[^/]+/outputs"): "predict with a version",
    ("POST", r"/searches"): "search (returns a search id that search feedback refers to)",
    # Feedback bodies carry the recording server's output_id / search_id: they need rewriting to
    # ids our server produced before these can be enabled.
    ("POST", r"/models/[^/]+/feedback"): "model feedback (needs output_id rewriting)",
    ("POST", r"/models/[^/]+/versions/[^/]+/feedback"): "model version feedback (needs output_id rewriting)",
    ("POST", r"/searches/feedback"): "search feedback (needs search_id rewriting)",
}

DROP_HEADERS = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}


def capture_files() -> list[Path]:
    return sorted(WIRE_DIR.glob("*.json")) if WIRE_DIR.is_dir() else []


def route_of(path: str) -> str:
    m = APP_SCOPED.match(path)
    rest = m.group("rest") if m else path.removeprefix("/v2")
    return rest or "/"


def classify(method: str, path: str) -> str:
    """'enabled', 'pending' or 'unknown' for a recorded request."""
    route = route_of(path)
    if any(m == method and re.fullmatch(p, route) for m, p in ENABLED_ROUTES):
        return "enabled"
    if any(m == method and re.fullmatch(p, route) for m, p in PENDING_ROUTES):
        return "pending"
    return "unknown"


def _retarget_body(node: Any, app_id: str) -> Any:
    if isinstance(node, dict):
        out = {k: _retarget_body(v, app_id) for k, v in node.items()}
        uai = out.get("user_app_id")
        if isinstance(uai, dict) and uai.get("app_id") == RECORDED_APP:
            out["user_app_id"] = {**uai, "app_id": app_id}
        return out
    if isinstance(node, list):
        return [_retarget_body(v, app_id) for v in node]
    return node


class Replay:
    """Turns a recorded request into the one to send to the live server."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server

    def path(self, path: str) -> str:
        m = APP_SCOPED.match(path)
        if m and m.group("app") == RECORDED_APP:
            return f"/v2/users/{m.group('user')}/apps/{self.server.app_id}{m.group('rest')}"
        return path

    def query(self, query: dict[str, Any]) -> str:
        q = {k: (self.server.app_id if k == "user_app_id.app_id" and v == RECORDED_APP else v)
             for k, v in (query or {}).items()}
        return urllib.parse.urlencode(q, doseq=True)

    def headers(self, headers: dict[str, str]) -> dict[str, str]:
        out = {}
        for k, v in (headers or {}).items():
            if k.lower() in DROP_HEADERS:
                continue
            if k.lower() == "authorization" and v == RECORDED_AUTH:
                v = f"Key {self.server.key}"
            out[k] = v
        return out

    def send(self, rec: dict[str, Any]) -> tuple[int, Any]:
        raw: bytes | None = None
        if rec.get("body") is not None:
            raw = json.dumps(_retarget_body(copy.deepcopy(rec["body"]), self.server.app_id)).encode()
        elif rec.get("body_raw") is not None:
            raw = rec["body_raw"].encode()
        return self.server.request(rec["method"], self.path(rec["path"]), query=self.query(rec.get("query") or {}),
                                   headers=self.headers(rec.get("headers") or {}), raw=raw)


def _outcome_problem(rec: dict[str, Any], status: int, body: Any) -> str | None:
    expected = rec.get("response_status") or 200
    code = body.get("status", {}).get("code") if isinstance(body, dict) else None
    if status != expected:
        return f"HTTP {status}, recorded {expected}"
    if expected == 200 and code != 10000:
        return f"HTTP 200 but status.code {code!r}, expected 10000"
    if expected != 200 and code == 10000:
        return f"HTTP {status} with status.code 10000"
    return None


def test_wire_captures_exist() -> None:
    if not WIRE_DIR.is_dir():
        pytest.skip(f"no captured client traffic at {WIRE_DIR}")
    assert capture_files(), f"{WIRE_DIR} holds no *.json capture"


def test_every_captured_route_is_classified() -> None:
    """A new capture with a route neither enabled nor pending must be looked at, not ignored."""
    if not capture_files():
        pytest.skip(f"no captured client traffic at {WIRE_DIR}")
    unknown = sorted({f"{r['method']} {route_of(r['path'])} ({f.name})"
                      for f in capture_files() for r in json.loads(f.read_text())
                      if classify(r["method"], r["path"]) == "unknown"})
    assert not unknown, "routes neither in ENABLED_ROUTES nor PENDING_ROUTES:\n" + "\n".join(unknown)


@pytest.mark.parametrize("capture", [f.name for f in capture_files()] or ["(none)"])
def test_replay_capture(capture: str, live_server: LiveServer) -> None:
    if capture == "(none)":
        pytest.skip(f"no captured client traffic at {WIRE_DIR}")
    records = sorted(json.loads((WIRE_DIR / capture).read_text()), key=lambda r: r["seq"])
    replay = Replay(live_server)
    problems, replayed = [], 0
    for rec in records:
        if classify(rec["method"], rec["path"]) != "enabled":
            continue
        replayed += 1
        status, body = replay.send(rec)
        problem = _outcome_problem(rec, status, body)
        if problem:
            sent = json.dumps(rec.get("body"))[:300] if rec.get("body") is not None else rec.get("body_raw")
            problems.append(f"#{rec['seq']} {rec['method']} {replay.path(rec['path'])}"
                            f"{'?' + replay.query(rec.get('query') or {}) if rec.get('query') else ''}: {problem}\n"
                            f"    sent: {sent}\n    got:  {json.dumps(body)[:600]}")
    if replayed == 0:
        pytest.skip(f"{capture}: no request on an enabled route")
    assert not problems, (f"{capture}: {len(problems)} of {replayed} replayed requests failed:\n" + "\n".join(problems)
                          + f"\n--- server log tail ---\n{live_server.log_tail()}")
