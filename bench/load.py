"""A mixed workload against a real server: predict, search, feedback and input adds at once.

    python bench/load.py [--seconds 60] [--clients 24]

``--clients`` asyncio clients (httpx, keep-alive, loopback) share one key of one app on a real
``visionloop serve`` with its default settings (the feedback rate limit, duplicate detection and
the background retraining worker all on). Each client loops for ``--seconds``, picking by weight:

- ``POST /v2/inputs`` (20%): one photo with an annotated concept and a unique id;
- ``POST /v2/models/{general}/outputs`` (25%): predict on a photo;
- ``POST /v2/searches`` (25%): by an annotated concept, by a predicted concept, or visually by
  an input id this client has seen acknowledged;
- feedback (30%): on its own predictions (concepts) or a click on a hit of its own searches.

Prints throughput, p50/p99 per route and the error count (must be 0: every answer 200 with
status 10000), then reads back ``GET /v2/inputs`` and ``GET /v2/feedback`` and compares what was
stored with what was acknowledged (must be equal; every feedback names a different end user, so
none is a duplicate). Writes bench/out/load.json. Exits non-zero when either check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PHOTOS, ROOT, b64, jpeg, pct, photo, publish, server  # noqa: E402
from visionloop import status  # noqa: E402
from visionloop.inference.catalog import GENERAL as GENERAL_MODEL  # noqa: E402

GENERAL = GENERAL_MODEL.id
OUT = ROOT / "bench" / "out" / "load.json"
WEIGHTS = {"add_input": 20, "predict": 25, "search": 25, "feedback": 30}
CONCEPTS = ["red", "green", "blue", "grey"]


def photos() -> list[str]:
    """Real photos (scikit-image's), 256 px on the long side, as base64 JPEG; tinted copies differ."""
    from PIL import ImageEnhance

    out = []
    for name in PHOTOS:
        img = photo(name)
        img.thumbnail((256, 256))
        out += [b64(jpeg(ImageEnhance.Color(img).enhance(factor), quality=85)) for factor in (0.6, 1.0, 1.4)]
    return out


class Stats:
    def __init__(self) -> None:
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.acked_inputs: list[str] = []
        self.acked_feedback = 0
        self.outputs: list[str] = []
        self.searches: list[tuple[str, str]] = []  # (search id, first hit's input id)


async def client(http: httpx.AsyncClient, n: int, stop: float, images: list[str], stats: Stats) -> None:
    rng = random.Random(n)
    ops, weights = zip(*WEIGHTS.items(), strict=True)
    i = 0
    while time.perf_counter() < stop:
        i += 1
        op = rng.choices(ops, weights)[0]
        tag = f"c{n}-{i}"
        if op == "add_input":
            concept = rng.choice(CONCEPTS)
            route, path = op, "/v2/inputs"
            body: dict[str, Any] = {"inputs": [{"id": f"in-{tag}", "data": {
                "image": {"base64": rng.choice(images)}, "concepts": [{"id": concept, "value": True}]}}]}
        elif op == "predict":
            route, path = op, f"/v2/models/{GENERAL}/outputs"
            body = {"inputs": [{"data": {"image": {"base64": rng.choice(images)}}}]}
        elif op == "search":
            kind = rng.choice(["annotated", "predicted", "visual"] if stats.acked_inputs else ["annotated"])
            route, path = f"search_{kind}", "/v2/searches"
            term = {"annotated": {"input": {"data": {"concepts": [{"id": rng.choice(CONCEPTS)}]}}},
                    "predicted": {"output": {"data": {"concepts": [{"name": "cat"}]}}},
                    "visual": {"output": {"input": {"id": rng.choice(stats.acked_inputs or ["-"])}}}}[kind]
            body = {"query": {"ands": [term]}, "pagination": {"page": 1, "per_page": 10}}
        elif stats.searches and (not stats.outputs or rng.random() < 0.3):
            search_id, clicked = rng.choice(stats.searches)
            route, path = "feedback_click", "/v2/searches/feedback"
            body = {"input": {"id": clicked, "feedback_info": {"event_type": "search_click", "search_id": search_id,
                                                                "end_user_id": f"user-{tag}", "session_id": "load"}}}
        elif stats.outputs:
            route, path = "feedback_concepts", f"/v2/models/{GENERAL}/feedback"
            body = {"input": {"data": {"concepts": [{"id": rng.choice(CONCEPTS), "value": True},
                                                    {"id": "cat", "value": rng.random() < 0.5}]},
                              "feedback_info": {"event_type": "annotation", "output_id": rng.choice(stats.outputs),
                                                "end_user_id": f"user-{tag}", "session_id": "load"}}}
        else:
            continue
        t = time.perf_counter()
        try:
            r = await http.post(path, json=body)
        except httpx.HTTPError as exc:
            stats.errors.append(f"{route}: {type(exc).__name__}")
            continue
        stats.latency[route].append(time.perf_counter() - t)
        answer = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if r.status_code != 200 or answer.get("status", {}).get("code") != status.SUCCESS:
            stats.errors.append(f"{route}: HTTP {r.status_code} {r.text[:200]}")
            continue
        if route == "add_input":
            stats.acked_inputs.append(answer["inputs"][0]["id"])
        elif route == "predict":
            stats.outputs.append(answer["outputs"][0]["id"])
        elif route.startswith("search") and answer["hits"]:
            stats.searches.append((answer["id"], answer["hits"][0]["input"]["id"]))
        elif route.startswith("feedback"):
            stats.acked_feedback += 1


async def run(base: str, key: str, clients: int, seconds: float, images: list[str]) -> tuple[Stats, float]:
    stats = Stats()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Key {key}"}, timeout=120,
                                 limits=limits) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(http, n, t0 + seconds, images, stats) for n in range(clients)))
        elapsed = time.perf_counter() - t0
    return stats, elapsed


def read_all(http: httpx.Client, path: str, field: str, params: dict[str, str] | None = None) -> list[dict]:
    out, page = [], 1
    while True:
        r = http.get(path, params={**(params or {}), "page": page, "per_page": 1000})
        r.raise_for_status()
        batch = r.json()[field]
        if not batch:
            return out
        out += batch
        page += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=24)
    args = parser.parse_args()
    images = photos()
    with server() as (base, key):
        # warm the models up (first predict loads them), outside the measured window
        with httpx.Client(base_url=base, headers={"Authorization": f"Key {key}"}, timeout=120) as http:
            http.post(f"/v2/models/{GENERAL}/outputs", json={"inputs": [{"data": {"image": {"base64": images[0]}}}]})
        print(f"{args.clients} clients for {args.seconds:g} s on {base} ...", flush=True)
        stats, elapsed = asyncio.run(run(base, key, args.clients, args.seconds, images))
        with httpx.Client(base_url=base, headers={"Authorization": f"Key {key}"}, timeout=120) as http:
            stored_inputs = {i["id"] for i in read_all(http, "/v2/inputs", "inputs")}
            stored_feedback = read_all(http, "/v2/feedback", "feedback", {"session_id": "load"})
    total = sum(len(v) for v in stats.latency.values())
    routes = {route: {"requests": len(lat), "rps": len(lat) / elapsed, "p50_ms": pct(lat, 50) * 1e3,
                      "p99_ms": pct(lat, 99) * 1e3} for route, lat in sorted(stats.latency.items())}
    missing_inputs = sorted(set(stats.acked_inputs) - stored_inputs)
    result = {
        "benchmark": "load", "clients": args.clients, "seconds": round(elapsed, 1), "requests": total,
        "rps": total / elapsed, "routes": routes, "errors": len(stats.errors), "error_samples": stats.errors[:5],
        "inputs": {"acknowledged": len(stats.acked_inputs), "stored": len(stored_inputs),
                   "missing": missing_inputs[:10]},
        "feedback": {"acknowledged": stats.acked_feedback, "stored": len(stored_feedback)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_at_end": os.getloadavg()},
    }
    print(f"{total} requests in {elapsed:.1f} s: {total / elapsed:.1f} req/s, {len(stats.errors)} errors")
    for route, row in routes.items():
        print(f"  {route:>18}: {row['requests']:6d} requests {row['rps']:6.1f} req/s  p50 {row['p50_ms']:7.1f} ms"
              f"  p99 {row['p99_ms']:7.1f} ms")
    for sample in stats.errors[:5]:
        print(f"  error: {sample}")
    print(f"inputs:   acknowledged {len(stats.acked_inputs)}, stored {len(stored_inputs)}")
    print(f"feedback: acknowledged {stats.acked_feedback}, stored {len(stored_feedback)}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT.relative_to(ROOT)}")
    ok = (not stats.errors and not missing_inputs and len(stored_inputs) == len(stats.acked_inputs)
          and len(stored_feedback) == stats.acked_feedback)
    publish("bench/load.py", f"{args.clients} clients, {elapsed:.0f} s: {total / elapsed:.0f} req/s, "
                             f"{len(stats.errors)} errors, acknowledged = stored: {'yes' if ok else 'NO'} "
                             f"({len(stored_inputs)} inputs, {len(stored_feedback)} feedback)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
