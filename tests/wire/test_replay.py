"""Replay the requests the official clients really sent (../shared/wire/*.json, beside the
repository) against a live server.

Each capture file is replayed in its recorded order (later requests read what earlier ones
wrote), with method, path, query, headers and body as recorded, except:

- the Authorization of the capture's key (``Key selftest-key``) becomes our key (other keys,
  deliberately wrong ones, are kept), and app-scoped paths, query strings and bodies are pointed
  at the live app;
- public image URLs (``https://samples.clarifai.com/...``, ``https://clarifai.com/...``) in
  requests that make the server fetch the image (predict, search) point at the loopback image
  host instead, which serves a real photo there: the server cannot reach the internet here, and
  refuses unreachable URLs per input (30106; HTTP 400 when every input fails). Feedback bodies
  keep their URLs: the server records them and never fetches them;
- feedback refers to output and search ids the *recording* server made: a model feedback's
  ``output_id`` becomes the id our server answered for the latest predict output of the same
  model in the same capture, and a search feedback's ``search_id`` the latest search of the
  capture whose hits hold the clicked input (else the latest search). The one recorded body
  that is not JSON (curl's region feedback with a trailing comma) gets the same id by text.

A request is replayed when its route is in ENABLED_ROUTES; the expected answer is the recorded
HTTP status (unless EXPECTED_STATUS says why ours differs), for a 200 the status code 10000 and a
response of the shape the clients read (``check_shape``), for an error the codes in
EXPECTED_CODES.
"""

from __future__ import annotations

import copy
import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.clients.live import ImageHost, LiveServer
from tests.clients.photos import Photo

WIRE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "wire"
RECORDED_APP = "selftest-app"
RECORDED_AUTH = "Key selftest-key"
APP_SCOPED = re.compile(r"^/v2/users/(?P<user>[^/]+)/apps/(?P<app>[^/]+)(?P<rest>/.*)$")
MODEL_ID = re.compile(r"^[0-9a-f]{32}$")

PREDICT = r"/models/[^/]+/outputs"
PREDICT_VERSION = r"/models/[^/]+/versions/[^/]+/outputs"
SEARCH = r"/searches"
MODEL_FEEDBACK = r"/models/[^/]+/feedback"
MODEL_VERSION_FEEDBACK = r"/models/[^/]+/versions/[^/]+/feedback"
SEARCH_FEEDBACK = r"/searches/feedback"

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
    ("GET", r"/models/[^/]+"),  # by id or by name
    ("POST", r"/models/searches"),
    ("POST", PREDICT),
    ("POST", PREDICT_VERSION),
    ("POST", SEARCH),
    ("POST", MODEL_FEEDBACK),
    ("POST", MODEL_VERSION_FEEDBACK),
    ("POST", SEARCH_FEEDBACK),
}

# Captured but not replayed yet (the route does not exist, or is being written): none now.
PENDING_ROUTES: dict[tuple[str, str], str] = {}

# Requests where the server fetches image URLs: public URLs there are served from loopback.
FETCHING_ROUTES = {("POST", PREDICT), ("POST", PREDICT_VERSION), ("POST", SEARCH)}
PUBLIC_IMAGE_HOSTS = {"samples.clarifai.com", "clarifai.com"}

# (capture, seq) -> (the HTTP status we expect instead of the recorded one, why)
EXPECTED_STATUS: dict[tuple[str, int], tuple[int, str]] = {
    # The recording server did not know the model name "logo" (404), so 2.6.2 fell back to
    # POST /v2/models/searches {"model_query": {"name": "logo"}} (#9). Ours knows its built-in
    # models by name (py2.json recorded 200 for the same request), so the lookup answers 200;
    # the fallback search is still replayed, and check_shape checks it finds the logo model.
    ("py2_name_404_fallback.json", 8): (200, "our server knows the logo model by name"),
}

# (capture, seq) -> status codes an error answer must carry
EXPECTED_CODES: dict[tuple[str, int], set[int]] = {
    # curl's region feedback body with a trailing comma after session_id: not JSON
    ("curl.json", 6): {11100},
    ("curl_app_scoped.json", 6): {11100},
}
UNAUTHENTICATED_CODES = {11008, 11009}  # a wrong key, or none: every recorded 401

DROP_HEADERS = {"host", "content-length", "connection", "accept-encoding", "transfer-encoding"}
OUTPUT_ID_TEXT = re.compile(r'("output_id"\s*:\s*")[^"]*(")')
SEARCH_ID_TEXT = re.compile(r'("search_id"\s*:\s*")[^"]*(")')


def capture_files() -> list[Path]:
    return sorted(WIRE_DIR.glob("*.json")) if WIRE_DIR.is_dir() else []


def route_of(path: str) -> str:
    m = APP_SCOPED.match(path)
    rest = m.group("rest") if m else path.removeprefix("/v2")
    return rest or "/"


def matched_route(method: str, path: str) -> str | None:
    """The ENABLED_ROUTES pattern a recorded request falls under."""
    route = route_of(path)
    for m, p in ENABLED_ROUTES:
        if m == method and re.fullmatch(p, route):
            return p
    return None


def classify(method: str, path: str) -> str:
    """'enabled', 'pending' or 'unknown' for a recorded request."""
    if matched_route(method, path) is not None:
        return "enabled"
    route = route_of(path)
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


def _path_ids(route: str) -> tuple[str, str | None]:
    """(model id, version id or None) of a /models/{id}[/versions/{vid}]/... route."""
    parts = route.split("/")
    return parts[2], (parts[4] if len(parts) > 4 and parts[3] == "versions" else None)


class Replay:
    """Turns a recorded request into the one to send to the live server, and remembers the
    output and search ids our server answered, for the feedback that refers to them."""

    def __init__(self, server: LiveServer, image_host: ImageHost, photo: Photo) -> None:
        self.server = server
        self.image_host = image_host
        self.photo = photo
        self.latest_output: dict[str, str] = {}         # model id -> id of its latest output
        self.searches: list[tuple[str, set[str]]] = []  # (search id, hit input ids), oldest first
        self.rewritten_urls: dict[str, str] = {}

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

    # -- public image URLs -> the loopback image host --------------------------------------------
    def local_url(self, url: str) -> str:
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or parsed.hostname not in PUBLIC_IMAGE_HOSTS:
            return url
        if url not in self.rewritten_urls:
            self.rewritten_urls[url] = self.image_host.add(f"/public/{parsed.hostname}{parsed.path}",
                                                           self.photo.data, "image/jpeg")
        return self.rewritten_urls[url]

    def _local_urls(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (self.local_url(v) if k == "url" and isinstance(v, str) else self._local_urls(v))
                    for k, v in node.items()}
        if isinstance(node, list):
            return [self._local_urls(v) for v in node]
        return node

    # -- feedback ids -------------------------------------------------------------------------
    def _output_for(self, route: str) -> str | None:
        return self.latest_output.get(_path_ids(route)[0])

    def _search_for(self, input_id: Any) -> str | None:
        for search_id, hits in reversed(self.searches):
            if input_id in hits:
                return search_id
        return self.searches[-1][0] if self.searches else None

    def _feedback_ids(self, pattern: str | None, route: str, body: Any) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return body
        info = body["input"].get("feedback_info")
        if not isinstance(info, dict):
            return body
        if pattern in (MODEL_FEEDBACK, MODEL_VERSION_FEEDBACK) and "output_id" in info:
            ours = self._output_for(route)
            if ours:
                info["output_id"] = ours
        if pattern == SEARCH_FEEDBACK and "search_id" in info:
            ours = self._search_for(body["input"].get("id"))
            if ours:
                info["search_id"] = ours
        return body

    def _feedback_ids_text(self, pattern: str | None, route: str, text: str) -> str:
        if pattern in (MODEL_FEEDBACK, MODEL_VERSION_FEEDBACK) and (ours := self._output_for(route)):
            return OUTPUT_ID_TEXT.sub(lambda m: m.group(1) + ours + m.group(2), text)
        if pattern == SEARCH_FEEDBACK and self.searches:
            return SEARCH_ID_TEXT.sub(lambda m: m.group(1) + self.searches[-1][0] + m.group(2), text)
        return text

    def body(self, rec: dict[str, Any]) -> bytes | None:
        pattern = matched_route(rec["method"], rec["path"])
        route = route_of(rec["path"])
        if rec.get("body") is not None:
            body = _retarget_body(copy.deepcopy(rec["body"]), self.server.app_id)
            if (rec["method"], pattern) in FETCHING_ROUTES:
                body = self._local_urls(body)
            return json.dumps(self._feedback_ids(pattern, route, body)).encode()
        if rec.get("body_raw") is not None:
            return self._feedback_ids_text(pattern, route, rec["body_raw"]).encode()
        return None

    def send(self, rec: dict[str, Any]) -> tuple[bytes | None, int, Any]:
        """Send the request; returns (the body sent, HTTP status, the parsed answer)."""
        raw = self.body(rec)
        status, body = self.server.request(rec["method"], self.path(rec["path"]),
                                           query=self.query(rec.get("query") or {}),
                                           headers=self.headers(rec.get("headers") or {}), raw=raw)
        self.remember(rec, body)
        return raw, status, body

    def remember(self, rec: dict[str, Any], body: Any) -> None:
        if not isinstance(body, dict):
            return
        pattern = matched_route(rec["method"], rec["path"])
        if pattern in (PREDICT, PREDICT_VERSION):
            for out in body.get("outputs") or []:
                if out.get("id") and (out.get("status") or {}).get("code") == 10000:
                    self.latest_output[_path_ids(route_of(rec["path"]))[0]] = out["id"]
        elif pattern == SEARCH and body.get("id"):
            hits = {((h.get("input") or {}).get("id")) for h in body.get("hits") or []}
            self.searches.append((body["id"], hits))


def check_shape(rec: dict[str, Any], sent: bytes | None, body: dict[str, Any]) -> str | None:
    """For a 200: does the response carry what the clients read? (../shared/DESIGN.md section 1)"""
    pattern = matched_route(rec["method"], rec["path"])
    route = route_of(rec["path"])
    request = json.loads(sent) if sent else {}
    if rec["method"] == "GET" and pattern == r"/models/[^/]+":
        model = body.get("model") or {}
        ref = route.split("/")[2]
        if not (model.get("id") and model.get("name") and model.get("created_at")
                and (model.get("output_info") or {}).get("type") and (model.get("model_version") or {}).get("id")):
            return f"model lacks id/name/created_at/output_info.type/model_version.id: {model}"
        if ref not in (model["id"], model["name"]):
            return f"asked for model {ref!r}, got {model['id']!r} ({model['name']})"
    elif pattern == r"/models/searches":
        name = ((request.get("model_query") or {}).get("name") or "").lower()
        models = body.get("models")
        if not models:
            return f"model search {request.get('model_query')} found nothing"
        if name and any(m.get("name", "").lower() != name for m in models):
            return f"model search for {name!r} answered {[m.get('name') for m in models]}"
    elif pattern in (PREDICT, PREDICT_VERSION):
        model_id, version_id = _path_ids(route)
        outputs = body.get("outputs") or []
        if len(outputs) != len(request.get("inputs") or []):
            return f"{len(outputs)} outputs for {len(request.get('inputs') or [])} inputs"
        for i, out in enumerate(outputs):
            if not out.get("id") or (out.get("status") or {}).get("code") != 10000:
                return f"outputs[{i}] has no id or is not Ok: {out.get('status')}"
            if (out.get("model") or {}).get("id") != model_id:
                return f"outputs[{i}] is from model {(out.get('model') or {}).get('id')!r}, asked {model_id!r}"
            if version_id and ((out.get("model") or {}).get("model_version") or {}).get("id") != version_id:
                return f"outputs[{i}] is from another version than {version_id!r}"
            if "concepts" not in (out.get("data") or {}) and "regions" not in (out.get("data") or {}):
                return f"outputs[{i}].data has neither concepts nor regions: {out.get('data')}"
            asked = (request["inputs"][i] or {}).get("id")
            if asked and (out.get("input") or {}).get("id") != asked:
                return f"outputs[{i}].input.id is {(out.get('input') or {}).get('id')!r}, sent {asked!r}"
    elif pattern == SEARCH:
        hits = body.get("hits")
        if not isinstance(body.get("id"), str) or not body["id"] or not isinstance(hits, list):
            return "a search response needs the search id and hits"
        for i, h in enumerate(hits):
            if not isinstance(h.get("score"), (int, float)) or not (h.get("input") or {}).get("id"):
                return f"hits[{i}] lacks score or input.id: {h}"
        scores = [h["score"] for h in hits]
        if scores != sorted(scores, reverse=True):
            return f"hits are not ranked by score: {scores}"
    return None


def _outcome_problem(capture: str, rec: dict[str, Any], sent: bytes | None, status: int, body: Any) -> str | None:
    recorded = rec.get("response_status") or 200
    expected = EXPECTED_STATUS.get((capture, rec["seq"]), (recorded, ""))[0]
    code = body.get("status", {}).get("code") if isinstance(body, dict) else None
    if status != expected:
        return f"HTTP {status}, expected {expected}" + (f" (recorded {recorded})" if expected != recorded else "")
    if expected == 200:
        if code != 10000:
            return f"HTTP 200 but status.code {code!r}, expected 10000"
        return check_shape(rec, sent, body)
    if code == 10000:
        return f"HTTP {status} with status.code 10000"
    codes = EXPECTED_CODES.get((capture, rec["seq"])) or (UNAUTHENTICATED_CODES if expected == 401 else None)
    if codes and code not in codes:
        return f"status.code {code!r}, expected one of {sorted(codes)}"
    return None


FEEDBACK_ROUTES = {MODEL_FEEDBACK, MODEL_VERSION_FEEDBACK, SEARCH_FEEDBACK}


def stored_feedback_problems(server: LiveServer, accepted: list[tuple[int, dict[str, Any]]]) -> list[str]:
    """Every accepted feedback is in the log (GET /v2/feedback?end_user_id=...), under the output
    or search id it was sent with (identical repeats are stored once: the id is still there)."""
    problems = []
    stored: dict[str, list[dict[str, Any]]] = {}
    for seq, info in accepted:
        user = info.get("end_user_id")
        if user not in stored:
            status, body = server.request("GET", "/v2/feedback", query=urllib.parse.urlencode(
                {"end_user_id": user, "per_page": 1000}))
            stored[user] = body.get("feedback", []) if status == 200 and isinstance(body, dict) else []
            if status != 200:
                problems.append(f"GET /v2/feedback?end_user_id={user}: HTTP {status} {json.dumps(body)[:300]}")
        ref = "output_id" if info.get("output_id") else "search_id"
        if not any(ev.get(ref) == info.get(ref) and ev.get("session_id") == info.get("session_id")
                   for ev in stored[user]):
            refs = [(e.get("output_id"), e.get("search_id")) for e in stored[user]]
            problems.append(f"#{seq}: feedback accepted but not stored: no event of end user {user!r} with "
                            f"{ref} {info.get(ref)!r} (stored: {refs})")
    return problems


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


def test_overrides_name_recorded_requests() -> None:
    """EXPECTED_STATUS / EXPECTED_CODES entries must point at real requests (a renumbered capture
    would otherwise silently drop them)."""
    if not capture_files():
        pytest.skip(f"no captured client traffic at {WIRE_DIR}")
    recorded = {(f.name, r["seq"]) for f in capture_files() for r in json.loads(f.read_text())}
    stale = sorted((set(EXPECTED_STATUS) | set(EXPECTED_CODES)) - recorded)
    assert not stale, f"overrides for requests that are not in the captures: {stale}"


@pytest.mark.parametrize("capture", [f.name for f in capture_files()] or ["(none)"])
def test_replay_capture(capture: str, live_server: LiveServer, image_host: ImageHost, photos: dict[str, Photo]) -> None:
    if capture == "(none)":
        pytest.skip(f"no captured client traffic at {WIRE_DIR}")
    records = sorted(json.loads((WIRE_DIR / capture).read_text()), key=lambda r: r["seq"])
    replay = Replay(live_server, image_host, photos["cat"])
    problems, replayed = [], 0
    accepted: list[tuple[int, dict[str, Any]]] = []  # feedback answered 200: (seq, feedback_info sent)
    for rec in records:
        if classify(rec["method"], rec["path"]) != "enabled":
            continue
        replayed += 1
        sent, status, body = replay.send(rec)
        problem = _outcome_problem(capture, rec, sent, status, body)
        if problem is None and status == 200 and matched_route(rec["method"], rec["path"]) in FEEDBACK_ROUTES:
            accepted.append((rec["seq"], json.loads(sent or b"{}")["input"]["feedback_info"]))
        if problem:
            shown = (sent or b"").decode()[:300]
            problems.append(f"#{rec['seq']} {rec['method']} {replay.path(rec['path'])}"
                            f"{'?' + replay.query(rec.get('query') or {}) if rec.get('query') else ''}: {problem}\n"
                            f"    sent: {shown}\n    got:  {json.dumps(body)[:600]}")
    if replayed == 0:
        pytest.skip(f"{capture}: no request on an enabled route")
    problems += stored_feedback_problems(live_server, accepted)
    for public, local in replay.rewritten_urls.items():
        if urllib.parse.urlsplit(local).path not in image_host.hits:
            problems.append(f"the server never fetched {local} (standing in for {public})")
    assert not problems, (f"{capture}: {len(problems)} of {replayed} replayed requests failed:\n" + "\n".join(problems)
                          + f"\n--- server log tail ---\n{live_server.log_tail()}")
