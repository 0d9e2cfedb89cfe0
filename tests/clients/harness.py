"""Reading the step results that the client scripts print."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.clients.live import LiveServer


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def value(result: dict[str, Any], name: str, server: LiveServer | None = None) -> Any:
    """The value a script step returned; a failed step fails the test with the client's error
    (HTTP status and body when there was a response) and the server log's tail."""
    steps = result["steps"]
    assert name in steps, f"the script recorded no step {name!r} (steps: {sorted(steps)})"
    step = steps[name]
    if not step["ok"]:
        err = dict(step["error"])
        trace = err.pop("traceback", "")
        msg = f"client step {name!r} failed: {json.dumps(err, indent=1, default=str)}\n{trace}"
        if server is not None:
            msg += f"\n--- server log tail ---\n{server.log_tail()}"
        raise AssertionError(msg)
    return step["value"]


def error(result: dict[str, Any], name: str) -> dict[str, Any]:
    """The error a step was expected to raise."""
    step = result["steps"][name]
    assert not step["ok"], f"step {name!r} was expected to fail but returned {step['value']!r}"
    return step["error"]


def concept_names(output: dict[str, Any], top: int | None = None) -> list[str]:
    """Concept names of one output (a script's predict view), highest value first."""
    concepts = sorted(output["concepts"], key=lambda c: -c["value"])
    return [c["name"] for c in concepts[:top]]


def assert_cat_photo(output: dict[str, Any], top: int = 10) -> None:
    """The general model saw the cat photo: a cat concept among its top concepts, values in
    [0, 1] and sorted, and the output has an id (feedback refers to it)."""
    from tests.clients.photos import CAT_NAMES

    assert output["status"] == 10000, output
    assert isinstance(output["id"], str) and output["id"], "an output without an id"
    values = [c["value"] for c in output["concepts"]]
    assert values and all(0.0 <= v <= 1.0 for v in values), values
    assert values == sorted(values, reverse=True), "concepts are not sorted by value"
    names = concept_names(output, top)
    assert CAT_NAMES & set(names), f"no cat among the top {top} concepts: {names}"


def assert_face_region(output: dict[str, Any]) -> dict[str, Any]:
    """The face model found a region with a sane box on the astronaut photo; returns it."""
    assert output["status"] == 10000, output
    assert isinstance(output["id"], str) and output["id"]
    assert output["regions"], "the face model found no region on skimage.data.astronaut()"
    region = max(output["regions"], key=lambda r: r["value"] or 0.0)
    box = region["box"]
    assert 0.0 <= box["top_row"] < box["bottom_row"] <= 1.0, box
    assert 0.0 <= box["left_col"] < box["right_col"] <= 1.0, box
    # the astronaut's face is in the upper half, a little right of the middle
    assert box["top_row"] < 0.5 and box["left_col"] < 0.7 and box["right_col"] > 0.3, box
    return region


def assert_ranked_first(search: dict[str, Any], expected: str, prefix: str, absent: tuple[str, ...] = ()) -> None:
    """A search (``{"id", "hits": [{"id", "score"}]}``) has a search id, hits sorted by score,
    and ``expected`` at the top.

    The server is shared by every client run, and runs add the same photos under their own
    prefixes: identical pixels score the same until clicks tell them apart (the click memory
    lifts the copies that other runs clicked for the same query image), so only copies of the
    same photo may rank above ``expected``, and it is the first of this run's inputs (``prefix``)."""
    assert isinstance(search.get("id"), str) and search["id"], f"no search id in {search}"
    hits = search["hits"]
    assert hits, f"no hits; expected {expected!r} first"
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True), f"hits not ranked by score: {hits}"
    ids = [h["id"] for h in hits]
    assert len(ids) == len(set(ids)), f"an input came back twice: {ids}"
    assert expected in ids, f"{expected!r} not among the hits {hits}"
    photo = expected[len(prefix):]
    above = ids[:ids.index(expected)]
    assert all(i.endswith(photo) for i in above), f"{expected!r} is below other photos: {hits}"
    own = [i for i in ids if i.startswith(prefix)]
    assert own[0] == expected, f"{expected!r} is not the first of this run's hits: {own}"
    for other in absent:
        assert other not in ids, f"{other!r} should not be a hit: {hits}"


def stored_feedback(server: LiveServer, end_user_id: str) -> list[dict[str, Any]]:
    """The feedback log of one end user (GET /v2/feedback?end_user_id=..., oldest first)."""
    import urllib.parse

    status, body = server.request("GET", "/v2/feedback",
                                  query=urllib.parse.urlencode({"end_user_id": end_user_id, "per_page": 1000}))
    assert status == 200 and body["status"]["code"] == 10000, (status, body)
    return body["feedback"]


def one_event(events: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    """The one stored feedback event whose fields equal ``match``."""
    found = [e for e in events if all(e.get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"{len(found)} feedback events with {match}; stored: " + json.dumps(
        [{k: e.get(k) for k in ("event_type", "model_id", "version_id", "output_id", "search_id", "input_id")}
         for e in events], indent=1)
    return found[0]
