"""A short way in for the hot write path: routes whose endpoint does all its own checking.

FastAPI serves a request through an exception middleware, an exit stack, a scan of the routes,
dependency solving and two request wrappers. For a feedback request that machinery cost the event
loop more than the request's own work there (measured against a bare Starlette endpoint: see
docs/benchmarks.md). An endpoint marked :func:`fast` takes only the
Request and checks key, scope and body itself (as the feedback endpoints do, in one worker-thread
call); :class:`FastLane` serves such routes straight from their endpoint, and passes every other
request on. The routes stay ordinary FastAPI routes: the OpenAPI schema is theirs, and they
answer any request the lane does not see. The lane runs inside :class:`~visionloop.http.guard.BodyGuard`,
so the body size limit and the refusal of NUL characters apply as to any route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from visionloop.http.errors import api_error_of, error_response
from visionloop.http.metrics import note_route
from visionloop.http.slashes import restore

Endpoint = Callable[[Request], Awaitable[Response]]


def fast(endpoint: Endpoint) -> Endpoint:
    """Mark an endpoint for the lane: it must take only the Request and raise ApiError on refusal."""
    endpoint.fast_lane = True  # type: ignore[attr-defined]
    return endpoint


def fast_routes(routers: Sequence[APIRouter], prefixes: Sequence[str]) -> list[Route]:
    """The marked routes of ``routers``, under each prefix they are included with."""
    return [Route(prefix + r.path, r.endpoint, methods=list(r.methods)) for router in routers for r in router.routes
            if isinstance(r, APIRoute) and getattr(r.endpoint, "fast_lane", False) for prefix in prefixes]


class FastLane:
    def __init__(self, app: ASGIApp, routes: Sequence[Route]) -> None:
        self.app = app
        self.routes = tuple(routes)
        self.methods = frozenset(m for r in self.routes for m in r.methods)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in self.methods:
            for route in self.routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    note_route(scope, route.path)
                    scope = {**scope, **child}
                    scope["path_params"] = restore(scope["path_params"])
                    request = Request(scope, receive)
                    try:
                        response = await route.endpoint(request)  # type: ignore[misc]
                    except Exception as exc:  # answered as the app's exception handlers would
                        response = error_response(api_error_of(exc, request))
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
