"""Isolation: app B's key on app A's ids (inputs, concepts, outputs, searches, model versions,
feedback) gets exactly the answer an id that never existed gets — never 200 with A's data, never
a 403 that would confirm the id exists — and A's data is untouched afterwards."""

from __future__ import annotations

import re
from typing import Any

from tests.helpers import Api
from tests.security.support import GENERAL, PNG, ROUTES
from visionloop.ids import new_id


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
