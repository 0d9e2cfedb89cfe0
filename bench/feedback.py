"""Feedback throughput: ``POST /v2/models/{id}/feedback`` on a real server vs a bare INSERT endpoint.

    python bench/feedback.py [--seconds 12] [--rounds 4] [--levels 1,8,64]

Two servers run side by side, each a uvicorn process on loopback:

- ``visionloop serve`` with every check on: the key, its scope, the body parsed and validated,
  the output looked up (it must be a real prediction of this app), the concepts resolved,
  duplicate detection, then the event appended to the log — committed before the answer;
- a bare Starlette app whose one route parses the JSON body and INSERTs one row of the same shape
  (the feedback_events columns and indexes) into its own SQLite database with the same durability
  (WAL, synchronous=FULL, one transaction per request, committed before the answer), off the event
  loop the way visionloop's feedback is (a pool of as many threads, the same GIL switch interval).

Real output ids come from real predicts made first. For each level of concurrent clients
(asyncio, one keep-alive connection each: ``bench/keepalive.py``), each server gets ``--seconds``
of sustained requests, in ``--rounds`` alternating turns (visionloop, bare, visionloop, bare,
...) so that both see the same machine even when its speed drifts; every answer must be 200 with status 10000. Prints
requests/s over all rounds (and per round), p50/p99 latency and the ratio of throughputs
(target >= 0.7), and writes bench/out/feedback.json.

Two settings differ from the defaults, both said in the output: the feedback rate limit is off
(``VISIONLOOP_FEEDBACK_RATE_LIMIT=0``: the point is to saturate the server; with it on, one key
gets 100/s) and automatic retraining is off (``VISIONLOOP_RETRAIN_AFTER_EVENTS=0``: a background
training job would compete for the CPU mid-measurement; it is not part of the request path).
Every request names a different end user, so duplicate detection runs and never short-cuts.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PHOTOS, ROOT, b64, free_port, jpeg, pct, photo, server  # noqa: E402
from bench.keepalive import Connection  # noqa: E402
from visionloop import status  # noqa: E402
from visionloop.http.threads import GIL_SWITCH_SECONDS, feedback_pool  # noqa: E402
from visionloop.inference.catalog import GENERAL as GENERAL_MODEL  # noqa: E402

GENERAL = GENERAL_MODEL.id
OUT = ROOT / "bench" / "out" / "feedback.json"
SETTINGS = {"VISIONLOOP_FEEDBACK_RATE_LIMIT": "0", "VISIONLOOP_RETRAIN_AFTER_EVENTS": "0"}

# -- the bare endpoint ------------------------------------------------------------------------------
BARE_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id VARCHAR(64) UNIQUE NOT NULL, app_id VARCHAR(64) NOT NULL,
    event_type VARCHAR(32) NOT NULL, model_pk INTEGER, version_id VARCHAR(64), output_id VARCHAR(64),
    search_id VARCHAR(64), input_id VARCHAR(64), rank INTEGER, end_user_id VARCHAR(255),
    session_id VARCHAR(255), body JSON NOT NULL, body_hash VARCHAR(64) NOT NULL, key_id VARCHAR(64) NOT NULL,
    created_at DATETIME NOT NULL);
CREATE INDEX IF NOT EXISTS ix_fe_app ON feedback_events (app_id);
CREATE INDEX IF NOT EXISTS ix_fe_output ON feedback_events (output_id);
CREATE INDEX IF NOT EXISTS ix_fe_search ON feedback_events (search_id);
CREATE INDEX IF NOT EXISTS ix_fe_user ON feedback_events (end_user_id);
CREATE INDEX IF NOT EXISTS ix_fe_hash ON feedback_events (body_hash);
CREATE INDEX IF NOT EXISTS ix_fe_created ON feedback_events (created_at);
"""


def bare_app(db_path: str) -> Any:
    """A Starlette app doing the least a durable feedback endpoint can: parse, one INSERT, commit."""
    import datetime as dt
    import hashlib

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    local = threading.local()
    pool = feedback_pool()  # blocking I/O off the loop, on threads like visionloop's feedback

    def conn() -> sqlite3.Connection:
        c = getattr(local, "conn", None)
        if c is None:
            c = sqlite3.connect(db_path, timeout=30, isolation_level=None, check_same_thread=False)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=FULL")
            c.execute("PRAGMA busy_timeout=30000")
            local.conn = c
        return c

    with sqlite3.connect(db_path) as setup:
        setup.executescript(BARE_SCHEMA)

    def insert(body: dict[str, Any]) -> None:
        info = body["input"]["feedback_info"]
        raw = json.dumps(body, sort_keys=True)
        c = conn()
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO feedback_events (id, app_id, event_type, model_pk, output_id, input_id, end_user_id,"
                  " session_id, body, body_hash, key_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                  (uuid.uuid4().hex, "bench", "annotation", 1, info.get("output_id"), body["input"].get("id"),
                   info.get("end_user_id"), info.get("session_id"), raw, hashlib.sha256(raw.encode()).hexdigest(),
                   "key", dt.datetime.now(dt.timezone.utc).isoformat()))
        c.execute("COMMIT")

    async def feedback(request: Request) -> JSONResponse:
        body = await request.json()
        await asyncio.get_running_loop().run_in_executor(pool, insert, body)
        return JSONResponse({"status": {"code": status.SUCCESS, "description": "Ok"}})

    return Starlette(routes=[Route("/v2/models/{model_id}/feedback", feedback, methods=["POST"])])


def serve_bare(port: int, db_path: str) -> None:
    import uvicorn

    sys.setswitchinterval(GIL_SWITCH_SECONDS)  # as visionloop serve sets it
    uvicorn.run(bare_app(db_path), host="127.0.0.1", port=port, log_level="warning", access_log=False)


@contextmanager
def bare_server() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = subprocess.Popen([sys.executable, __file__, "--serve-bare", str(port), str(Path(tmp) / "bare.db")],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    httpx.get(base + "/", timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("the bare server did not start")
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=30)


# -- load ------------------------------------------------------------------------------------------
def feedback_body(output_id: str, n: int) -> dict[str, Any]:
    return {"input": {"data": {"concepts": [{"id": "cat", "value": True}, {"id": "dog", "value": False}]},
                      "feedback_info": {"event_type": "annotation", "output_id": output_id,
                                        "end_user_id": f"user-{n}", "session_id": f"session-{n % 97}"}}}


@dataclasses.dataclass
class Run:
    """One turn of sustained load on one server."""

    latencies: list[float]
    errors: list[str]
    seconds: float
    warm_ups: int  # one request per connection before the clock starts (acknowledged too)


async def sustain(base: str, headers: dict[str, str], outputs: list[str], clients: int, seconds: float,
                  start_at: int) -> Run:
    """``clients`` loops posting feedback for ``seconds``; latencies of the requests that finished in time."""
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(start_at, 10**9))
    path = f"/v2/models/{GENERAL}/feedback"
    connections = await asyncio.gather(*(Connection.open(base, headers) for _ in range(clients)))

    def check(code: int, body: bytes) -> None:
        if code != 200 or json.loads(body)["status"]["code"] != status.SUCCESS:
            errors.append(body[:200].decode(errors="replace"))

    try:
        # warm-up: one request per connection (each must succeed: they count as acknowledged)
        for code, body in await asyncio.gather(*(c.post(path, feedback_body(outputs[0], next(counter)))
                                                 for c in connections)):
            check(code, body)
        t0 = time.perf_counter()
        stop = t0 + seconds

        async def client(conn: Connection) -> None:
            while time.perf_counter() < stop:
                n = next(counter)
                t = time.perf_counter()
                code, body = await conn.post(path, feedback_body(outputs[n % len(outputs)], n))
                latencies.append(time.perf_counter() - t)
                check(code, body)

        await asyncio.gather(*(client(c) for c in connections))
        elapsed = time.perf_counter() - t0
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return Run(latencies, errors, elapsed, clients)


def summary(runs: list[Run]) -> dict[str, Any]:
    """All rounds of one server at one level together."""
    latencies = [x for r in runs for x in r.latencies]
    errors = [e for r in runs for e in r.errors]
    seconds = sum(r.seconds for r in runs)
    return {"rounds": len(runs), "requests": len(latencies), "seconds": round(seconds, 2),
            "rps": (len(latencies) - len(errors)) / seconds,  # answered Ok per second
            "rps_per_round": [round((len(r.latencies) - len(r.errors)) / r.seconds, 1) for r in runs],
            "p50_ms": pct(latencies, 50) * 1e3, "p99_ms": pct(latencies, 99) * 1e3,
            "errors": len(errors), "first_error": errors[0] if errors else None,
            "warm_ups": sum(r.warm_ups for r in runs)}


def real_outputs(base: str, headers: dict[str, str], n: int = 16) -> list[str]:
    """Output ids of real predictions on real photos, as an application would get them."""
    photos = [b64(jpeg(photo(name), quality=85)) for name in PHOTOS]
    out = []
    with httpx.Client(base_url=base, headers=headers, timeout=120) as http:
        for i in range(n):
            r = http.post(f"/v2/models/{GENERAL}/outputs", json={"inputs": [{"data": {"image": {
                "base64": photos[i % len(photos)]}}}]})
            r.raise_for_status()
            out.append(r.json()["outputs"][0]["id"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="sustained load per server and level")
    parser.add_argument("--rounds", type=int, default=4, help="alternating turns the seconds are split into")
    parser.add_argument("--levels", default="1,8,64", help="concurrent clients, comma-separated")
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), args.serve_bare[1])
        return
    levels = [int(x) for x in args.levels.split(",")]
    print(f"settings for visionloop: {SETTINGS} (rate limit off to saturate; background retraining off)", flush=True)
    rows = []
    with server(extra_env=SETTINGS) as (base, key), bare_server() as bare:
        auth = {"Authorization": f"Key {key}"}
        outputs = real_outputs(base, auth)
        print(f"{len(outputs)} real output ids from real predicts", flush=True)
        n = 0
        for clients in levels:
            turns: dict[str, list[Run]] = {"visionloop": [], "bare": []}
            for _ in range(args.rounds):
                for name, url, headers in (("visionloop", base, auth), ("bare", bare, {})):
                    run = sustain(url, headers, outputs, clients, args.seconds / args.rounds, n)
                    turns[name].append(asyncio.run(run))
                    n += 10**6
            vl, raw = summary(turns["visionloop"]), summary(turns["bare"])
            row = {"clients": clients, "visionloop": vl, "bare": raw, "ratio": vl["rps"] / raw["rps"]}
            rows.append(row)
            print(f"{clients:>3} clients | visionloop {vl['rps']:7.1f} req/s p50 {vl['p50_ms']:7.1f} ms p99 "
                  f"{vl['p99_ms']:7.1f} ms ({vl['errors']} errors) | bare INSERT {raw['rps']:7.1f} req/s p50 "
                  f"{raw['p50_ms']:7.1f} ms p99 {raw['p99_ms']:7.1f} ms ({raw['errors']} errors) | "
                  f"ratio {row['ratio']:.2f}x (per round {vl['rps_per_round']} vs {raw['rps_per_round']})", flush=True)
        with httpx.Client(base_url=base, headers=auth, timeout=60) as http:
            stored = 0
            page = 1
            while True:
                batch = http.get("/v2/feedback", params={"page": page, "per_page": 1000}).json()["feedback"]
                stored += len(batch)
                if not batch:
                    break
                page += 1
    acked = sum(r["visionloop"]["requests"] - r["visionloop"]["errors"] + r["visionloop"]["warm_ups"] for r in rows)
    print(f"visionloop stored {stored} feedback events for {acked} acknowledged requests (warm-ups included)")
    result = {"benchmark": "feedback", "seconds_per_level": args.seconds, "rounds": args.rounds, "settings": SETTINGS,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_avg_at_end": os.getloadavg()},
              "target_ratio": 0.7, "levels": rows, "stored": stored, "acknowledged": acked}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1))
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
