"""What the Prometheus instrumentation costs on the hot paths, in process (docs/monitoring.md).

    python bench/metrics_overhead.py [--requests 50000]

- event-loop time per HTTP request added by the request timer (RequestMetrics outermost,
  RouteNote innermost) around an app that answers at once, against the bare app;
- time of the one-line recorders the services call (a feedback event, a predict, a search);
- time of one scrape (``generate_latest``) of a VisionLoop on a temporary SQLite database.

Median of 5 runs each; figures measured on a loaded machine are upper bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from types import SimpleNamespace

from prometheus_client import generate_latest

from visionloop.http.metrics import RequestMetrics, RouteNote, exposition_registry
from visionloop.metrics import METRICS


async def _answer(scope: dict, receive: Callable, send: Callable) -> None:
    scope["route"] = SimpleNamespace(path="/v2/models/{model_id}/feedback")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _drive(app: Callable, n: int) -> float:
    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(_: dict) -> None:
        return None

    started = time.perf_counter()
    for _ in range(n):
        await app({"type": "http", "method": "POST", "path": "/v2/models/x/feedback", "root_path": ""}, receive, send)
    return (time.perf_counter() - started) / n


def _per_call(fn: Callable[[], None], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - started) / n


def _median(measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(5))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50_000)
    n = parser.parse_args().requests
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
    from visionloop.config import load_settings
    from visionloop.core import VisionLoop

    with tempfile.TemporaryDirectory() as data:
        core = VisionLoop(load_settings({"data_dir": data}, environ={}))
        try:
            registry = exposition_registry(core)
            scrape = _median(lambda: _per_call(lambda: generate_latest(registry), 50))
            size = len(generate_latest(registry))
        finally:
            core.close()
    print(f"one scrape (empty database): {scrape * 1e3:.2f} ms, {size} bytes")


if __name__ == "__main__":
    main()
