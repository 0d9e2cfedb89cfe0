"""What the Prometheus instrumentation costs on the hot paths, in process (docs/monitoring.md).

    python bench/metrics_overhead.py [--requests 50000] [--feedback 2000]

- event-loop time per HTTP request added by the request timer (RequestMetrics outermost,
  RouteNote innermost) around an app that answers at once, against the bare app;
- time of the one-line recorders the services call (a feedback event, a predict, a search);
- time of one scrape (``generate_latest``) of a VisionLoop on a temporary SQLite database;
- CPU time of the whole process per feedback request through the HTTP app (client included, in
  process), metrics off against ``token``, in alternating rounds over one database.

CPU time of this process (``time.process_time``), median of 5 runs each: less sensitive to other
processes than wall time, though a loaded machine's shared caches still slow it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from types import SimpleNamespace

from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from visionloop.config import load_settings
from visionloop.core import VisionLoop
from visionloop.http.app import create_app
from visionloop.http.metrics import RequestMetrics, RouteNote, exposition_registry
from visionloop.metrics import METRICS
from visionloop.services.apps import SCOPES


async def _answer(scope: dict, receive: Callable, send: Callable) -> None:
    scope["route"] = SimpleNamespace(path="/v2/models/{model_id}/feedback")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _drive(app: Callable, n: int) -> float:
    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(_: dict) -> None:
        return None

    started = time.process_time()
    for _ in range(n):
        await app({"type": "http", "method": "POST", "path": "/v2/models/x/feedback", "root_path": ""}, receive, send)
    return (time.process_time() - started) / n


def _per_call(fn: Callable[[], None], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - started) / n


def _median(measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(5))


def _feedback_cpu(core: VisionLoop, key: str, metrics: str, n: int, offset: int) -> float:
    """Process CPU seconds per feedback request (unlinked concept feedback, each by its own end user)."""
    settings = dataclasses.replace(core.settings, metrics=metrics, metrics_token="t" * 16)
    headers = {"Authorization": f"Key {key}"}
    with TestClient(create_app(settings, core)) as client:
        started = time.process_time()
        for i in range(offset, offset + n):
            body = {"input": {"data": {"concepts": [{"id": "cat", "value": i % 2 == 0}]},
                              "feedback_info": {"event_type": "annotation", "output_id": "unlinked-output",
                                                "end_user_id": f"user-{i}"}}}
            r = client.post("/v2/models/aaa03c23b3724a16a56b629203edc62c/feedback", json=body, headers=headers)
            assert r.status_code == 200, r.text
        return (time.process_time() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--feedback", type=int, default=2_000, help="feedback requests per round (4 rounds a mode)")
    args = parser.parse_args()
    n = args.requests
    bare = _median(lambda: asyncio.run(_drive(_answer, n)))
    timed = _median(lambda: asyncio.run(_drive(RequestMetrics(RouteNote(_answer)), n)))
    print(f"HTTP request timer: {(timed - bare) * 1e6:.2f} us of event-loop time per request "
          f"(bare app {bare * 1e6:.2f} us, timed {timed * 1e6:.2f} us)")
    event = {"kind": "concepts", "concepts": [{"id": "cat", "value": 1.0}, {"id": "dog", "value": 0.0}]}
    model = SimpleNamespace(app_id="", id="general", model_type="concept")
    for what, fn in (("feedback event (2 verdicts)", lambda: METRICS.feedback_stored(event, False)),
                     ("predict", lambda: METRICS.predicted(model, 1)),
                     ("search", lambda: METRICS.searched("visual")),
                     ("group-commit batch", lambda: METRICS.feedback_commit_batch.observe(3))):
        print(f"recorder, {what}: {_median(lambda: _per_call(fn, n)) * 1e6:.2f} us per call")
    with tempfile.TemporaryDirectory() as data:
        core = VisionLoop(load_settings({"data_dir": data, "feedback_rate_limit": 0}, environ={}))
        try:
            registry = exposition_registry(core)
            scrape = _median(lambda: _per_call(lambda: generate_latest(registry), 50))
            size = len(generate_latest(registry))
            print(f"one scrape (empty database): {scrape * 1e3:.2f} ms, {size} bytes")
            core.apps.create_app("bench")
            key = str(core.apps.create_key("bench", SCOPES)[1])
            _feedback_cpu(core, key, "off", 200, 0)  # warm-up
            cpu: dict[str, list[float]] = {"off": [], "token": []}
            for turn in range(8):
                mode = ("off", "token")[turn % 2]
                cpu[mode].append(_feedback_cpu(core, key, mode, args.feedback, (turn + 1) * args.feedback))
        finally:
            core.close()
    off, on = (statistics.median(cpu[m]) for m in ("off", "token"))
    print(f"feedback request, process CPU: off {off * 1e6:.0f} us, token {on * 1e6:.0f} us, "
          f"{(on - off) * 1e6:+.0f} us ({(on / off - 1) * 100:+.1f}%); rounds off "
          f"{[round(x * 1e6) for x in cpu['off']]}, token {[round(x * 1e6) for x in cpu['token']]}")


if __name__ == "__main__":
    main()
