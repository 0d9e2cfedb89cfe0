"""Request dependencies: the VisionLoop instance, the authenticated caller and its scopes, paging."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader
from pydantic import WithJsonSchema
from starlette.concurrency import run_in_threadpool

from visionloop import errors
from visionloop.core import VisionLoop
from visionloop.services.apps import Caller
from visionloop.services.paging import Page


async def get_core(request: Request) -> VisionLoop:
    """Async on purpose, like every dependency that does no I/O: FastAPI runs a sync one in the
    thread pool, a hop that costs more than the work."""
    return request.app.state.core


CoreDep = Annotated[VisionLoop, Depends(get_core)]


# Declared for the OpenAPI schema (and so for clients and fuzzers); get_caller reads the header itself.
API_KEY = APIKeyHeader(name="Authorization", scheme_name="ApiKey", auto_error=False,
                       description="`Key <your API key>`; a key belongs to one app and carries scopes.")


async def get_caller(request: Request, core: CoreDep,
                     _declared: Annotated[str | None, Security(API_KEY)] = None) -> Caller:
    """Async: a key seen within the last second is known without I/O, so most requests take no
    thread-pool hop to authenticate; an unknown one is looked up in a worker thread."""
    key = presented_key(request)
    caller = core.apps.recent_caller(key) or await run_in_threadpool(core.apps.authenticate, key)
    return in_app(request, caller)


def authenticate(request: Request, core: VisionLoop) -> Caller:
    """Authenticate ``Authorization: Key <key>`` (blocking: for routes already in a worker thread)."""
    return in_app(request, core.apps.authenticate(presented_key(request)))


def presented_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.strip().partition(" ")
    if not header:
        raise errors.KeyMissing("send the header 'Authorization: Key <your API key>'")
    if scheme.lower() != "key" or not key.strip():
        raise errors.KeyInvalid("the Authorization header must be 'Key <your API key>'")
    return key.strip()


def in_app(request: Request, caller: Caller) -> Caller:
    """An app-scoped path must name the key's own app."""
    app_id = request.path_params.get("app_id")
    if app_id is not None and app_id != caller.app_id:
        raise errors.AppNotFound(f"app {app_id!r} does not exist for this API key")
    return caller


async def get_base_url(request: Request, core: CoreDep) -> str:
    """Where clients reach this server: the ``public_base_url`` setting, else this request's own URL."""
    return core.settings.public_base_url or str(request.base_url).rstrip("/")


BaseUrlDep = Annotated[str, Depends(get_base_url)]


def scoped(scope: str) -> Callable[..., Caller]:
    async def dependency(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
        caller.require(scope)
        return caller

    dependency.__name__ = f"require_{scope}"
    return dependency


InputsCaller = Annotated[Caller, Depends(scoped("inputs"))]
ConceptsCaller = Annotated[Caller, Depends(scoped("concepts"))]
ModelsCaller = Annotated[Caller, Depends(scoped("models"))]
PredictCaller = Annotated[Caller, Depends(scoped("predict"))]
SearchCaller = Annotated[Caller, Depends(scoped("search"))]
FeedbackAdminCaller = Annotated[Caller, Depends(scoped("feedback_admin"))]


# The raw strings go to Page.of (its messages, an empty value means the default); the schema says what is valid.
_PAGE_NUMBER = WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1, "maximum": 2**31},
                                         {"type": "string", "maxLength": 0}]})
PageParam = Annotated[str | None, _PAGE_NUMBER, Query(description="1-based page number (default 1)")]
PerPageParam = Annotated[str | None, _PAGE_NUMBER,
                         Query(description="Items per page (default VISIONLOOP_DEFAULT_PER_PAGE, capped at "
                                           "VISIONLOOP_MAX_PER_PAGE)")]


async def get_page(core: CoreDep, page: PageParam = None, per_page: PerPageParam = None) -> Page:
    return Page.of(page, per_page, default=core.settings.default_per_page, cap=core.settings.max_per_page)


PageDep = Annotated[Page, Depends(get_page)]
