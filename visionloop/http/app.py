"""The ASGI app factory: ``create_app(settings)`` builds a VisionLoop and mounts every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute

from visionloop import __version__
from visionloop.config import Settings
from visionloop.core import VisionLoop
from visionloop.http import health
from visionloop.http.api_docs import install_api_docs
from visionloop.http.console import install_console
from visionloop.http.errors import CatchAll, install_error_handlers
from visionloop.http.fast_lane import FastLane, fast_routes
from visionloop.http.guard import BodyGuard
from visionloop.http.metrics import exposed_metrics, install_metrics
from visionloop.http.routes import alarms, concepts, feedback, inputs, models, predict, search, versions
from visionloop.http.schemas import ErrorOut
from visionloop.http.slashes import EncodedSlashes
from visionloop.http.threads import feedback_pool

# Routes are matched in this order, one by one: the hot paths (feedback, predict) come first.
ROUTERS: tuple[APIRouter, ...] = (feedback.router, predict.router, inputs.router, concepts.router, models.router,
                                  search.router, versions.router, alarms.router)
APP_SCOPED = "/v2/users/{user_id}/apps/{app_id}"
# What every route may answer besides 200 (and instead of FastAPI's 422, which we never send).
ERROR_RESPONSES: dict[int | str, dict] = {
    "4XX": {"model": ErrorOut, "description": "Refused: 400 bad request, 401 key missing or invalid, 403 scope "
                                               "missing, 404 unknown resource, 413 body too large, 429 throttled"},
    "5XX": {"model": ErrorOut, "description": "Internal failure (10020), logged; never a traceback"},
}


def _scoped_id(route: APIRoute) -> str:
    return f"app_scoped_{route.name}"


def _user_id(route: APIRoute) -> str:
    return f"user_scoped_{route.name}"


def _user_path(user_id: str) -> None:
    """Declares the user-scoped path parameter; the key decides the app."""


def _app_path(user_id: str, app_id: str) -> None:
    """Declares the app-scoped path parameters; ``get_caller`` checks app_id against the key."""


def create_app(settings: Settings, core: VisionLoop | None = None) -> FastAPI:
    """Build the app; pass ``core`` to share one VisionLoop (tests), else one is made at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = core is None
        app.state.core = core or VisionLoop(settings)
        # The pool the blocking routes (predict, input adds, search) run on; sized per docs/serving.md.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        try:
            with exposed_metrics(app, app.state.core, settings):
                yield
        finally:  # a fresh pool (no threads until used) for an app driven again, as tests do
            pool, app.state.feedback_pool = app.state.feedback_pool, feedback_pool()
            pool.shutdown(wait=True)  # feedback being recorded is committed before the core closes
            if owned:
                app.state.core.close()

    # FastAPI's native OpenTelemetry bridge is off: visionloop configures no provider, and asking
    # whether one is configured cost every request a few percent of its time on the event loop.
    app = FastAPI(title="visionloop", version=__version__, lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False}, docs_url=None, redoc_url=None,
                  description="Clarifai v2 compatible visual recognition API that learns from feedback.")
    if core is not None:
        app.state.core = core
    app.state.feedback_pool = feedback_pool()
    for router in ROUTERS:
        app.include_router(router, prefix="/v2", responses=ERROR_RESPONSES)
        app.include_router(router, prefix=APP_SCOPED, generate_unique_id_function=_scoped_id,
                           dependencies=[Depends(_app_path)], responses=ERROR_RESPONSES)
    app.include_router(models.user_router, prefix="/v2/users/{user_id}", generate_unique_id_function=_user_id,
                       dependencies=[Depends(_user_path)], responses=ERROR_RESPONSES)
    app.include_router(health.router)
    install_api_docs(app)
    install_console(app)
    install_error_handlers(app)
    app.add_middleware(FastLane, routes=fast_routes(ROUTERS, ("/v2", APP_SCOPED)))  # inside BodyGuard: added first
    app.add_middleware(EncodedSlashes)  # before any routing: the lane's and the app's
    app.add_middleware(BodyGuard, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(CatchAll)
    install_metrics(app, settings)  # outermost, when metrics are on
    return app
