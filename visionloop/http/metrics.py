"""``GET /metrics`` in the Prometheus text format, as the ``metrics`` setting says:

- ``off``: nothing is exposed or timed (the route answers 404 like any unknown path);
- ``token``: on the API port, only to ``Authorization: Bearer <metrics_token>`` (else a plain-text
  401 a scraper reports as such; an API key opens nothing here);
- ``port``: open, on its own listener at ``metrics_host:metrics_port`` (a thread started with the
  app and stopped with it), never on the API port.

What is exposed: the process's counters (:mod:`visionloop.metrics`), timed requests
(:class:`RequestMetrics`), the process collector's CPU and memory, and figures read from the
database at each scrape (:data:`SCRAPE_TIME`).

**Adding a figure read at scrape time** (the alarms' firing gauge, say): write a function taking the
VisionLoop and yielding metric families (``prometheus_client.core.GaugeMetricFamily``, ...), reading
through a service, and add it to :data:`SCRAPE_TIME`. It runs in a worker thread on every scrape;
if it raises, its families are left out of that scrape and the error is logged.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from visionloop.config import Settings, SettingsError
from visionloop.metrics import METRICS

if TYPE_CHECKING:
    from visionloop.core import VisionLoop

log = logging.getLogger("visionloop.http")
# The scope key of the route a request matched: [template, the request's root_path], shared by the
# copies of the scope that middlewares make; whoever routes the request fills in the template (note_route).
_ROUTE = "visionloop.route"
UNMATCHED = "<unmatched>"  # a request no route took (404): one label for every unknown path
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ScrapeRead = Callable[["VisionLoop"], Iterable[Metric]]


def active_versions(core: VisionLoop) -> Iterator[Metric]:
    family = InfoMetricFamily("visionloop_active_version", "The version an app predicts with for a model when no "
                              "version is named, where one was promoted or chosen (none: the base version).",
                              labels=["app", "model"])
    for a in core.monitoring.active_versions():
        family.add_metric([a.app_id, a.model_id], {"version": a.version_id, "by_hand": str(a.by_hand).lower()})
    yield family


def index_sizes(core: VisionLoop) -> Iterator[Metric]:
    family = GaugeMetricFamily("visionloop_vector_index_entries", "Entries of each app's visual search index.",
                               labels=["app"])
    for app_id, n in sorted(core.monitoring.index_sizes().items()):
        family.add_metric([app_id], n)
    yield family


def training_queue(core: VisionLoop) -> Iterator[Metric]:
    family = GaugeMetricFamily("visionloop_training_jobs", "Training jobs queued or training now, in every "
                               "process of the server.", labels=["state"])
    for state, n in core.monitoring.unfinished_training().items():
        family.add_metric([state], n)
    yield family


def firing_alarms(core: VisionLoop) -> Iterator[Metric]:
    """Firing alarms counted per app, model and kind: concepts stay out of the labels, which keeps
    their number bounded by the apps' models (GET /v2/alarms names the concepts)."""
    family = GaugeMetricFamily("visionloop_alarms_firing", "Alarms firing now (docs/alarms.md), per app, model "
                               "and kind; the model is empty for search alarms.", labels=["app", "model", "kind"])
    counts = Counter((a.app_id, a.model_id or "", a.kind) for a in core.alarms.firing())
    for labels, n in sorted(counts.items()):
        family.add_metric(list(labels), n)
    yield family


# Read from the database at each scrape: the hook for more such figures (see the module's docstring).
SCRAPE_TIME: tuple[ScrapeRead, ...] = (active_versions, index_sizes, training_queue, firing_alarms)


class DatabaseFigures:
    """A collector running the scrape-time reads for one VisionLoop."""

    def __init__(self, core: VisionLoop, reads: Iterable[ScrapeRead]) -> None:
        self.core = core
        self.reads = tuple(reads)

    def collect(self) -> Iterator[Metric]:
        for read in self.reads:
            try:
                families = list(read(self.core))
            except Exception:  # a scrape shows what it can; the failure is the operator's to see in the log
                log.exception("metrics: reading %s failed", read.__name__)
                continue
            yield from families


def exposition_registry(core: VisionLoop, reads: Iterable[ScrapeRead] = SCRAPE_TIME) -> CollectorRegistry:
    """What one scrape shows: the process's metrics and its VisionLoop's database figures."""
    registry = CollectorRegistry()
    for collector in (METRICS.registry, DatabaseFigures(core, reads)):
        registry.register(collector)  # type: ignore[arg-type]  # duck-typed: both have collect()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def note_route(scope: Scope, path: str) -> None:
    """Tell the request timer which route template took the request."""
    slot = scope.get(_ROUTE)
    if slot is not None:
        slot[0] = path


class RequestMetrics:
    """Outermost middleware: counts and times every HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        slot = scope[_ROUTE] = [UNMATCHED, scope.get("root_path", "")]
        code = 500

        async def timed_send(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"  # a client may send any token
            route = slot[0]
            METRICS.child(METRICS.http_requests, method, route, str(code)).inc()
            METRICS.child(METRICS.http_seconds, method, route).observe(time.perf_counter() - started)


class RouteNote:
    """Innermost middleware: passes the template of the route the app's router chose to
    :class:`RequestMetrics`, whose scope may be another copy.

    A route included under two prefixes is one route object whose ``path`` lacks the prefix; the
    template with it is in FastAPI's record of the route it chose (an internal, like those the fast
    lane uses: the tests check the labels); the route object's own path is the fallback. A mount
    (the API docs' static files) is known by the root_path it sets: ``<mount>/{path}``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            chosen = (scope.get("fastapi") or {}).get("effective_route_context")
            template = getattr(chosen, "path_format", None) or getattr(scope.get("route"), "path", None)
            slot = scope.get(_ROUTE)
            if not template and slot is not None and scope.get("root_path", "") != slot[1]:  # a mount (StaticFiles)
                template = scope["root_path"][len(slot[1]):] + "/{path}"
            if template:
                note_route(scope, template)


def bearer_matches(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def metrics_endpoint(token: str) -> Callable[[Request], Awaitable[Response]]:
    """``GET /metrics`` on the API port, for a scraper sending ``token``."""

    async def metrics(request: Request) -> Response:
        if not bearer_matches(request.headers.get("authorization"), token):
            return PlainTextResponse("401 Unauthorized: GET /metrics needs 'Authorization: Bearer "
                                     "<VISIONLOOP_METRICS_TOKEN>'\n", status_code=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        body = await run_in_threadpool(generate_latest, request.app.state.metrics_registry)  # reads the database
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics


def install_metrics(app: FastAPI, settings: Settings) -> None:
    """Time requests and route ``/metrics`` as the setting says (call after every other middleware)."""
    if settings.metrics == "off":
        return
    if settings.metrics == "token":
        app.add_api_route("/metrics", metrics_endpoint(settings.metrics_token), methods=["GET"],
                          include_in_schema=False)
    app.user_middleware.append(Middleware(RouteNote))  # innermost: sees the scope the router fills in
    app.add_middleware(RequestMetrics)  # outermost: times everything, refusals and failures too


@contextmanager
def exposed_metrics(app: FastAPI, core: VisionLoop, settings: Settings) -> Iterator[None]:
    """For the app's lifetime: the registry a scrape reads and, in ``port`` mode, its listener."""
    if settings.metrics == "off":
        yield
        return
    app.state.metrics_registry = registry = exposition_registry(core)
    if settings.metrics != "port":
        yield
        return
    try:
        server, thread = start_http_server(settings.metrics_port, settings.metrics_host, registry)
    except OSError as exc:
        raise SettingsError(f"VISIONLOOP_METRICS=port: cannot listen on {settings.metrics_host}:"
                            f"{settings.metrics_port} ({exc}); set VISIONLOOP_METRICS_PORT to a free port") from None
    log.info("metrics: serving /metrics on http://%s:%d", settings.metrics_host, settings.metrics_port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
