"""/searches: search inputs by concepts, metadata and visual similarity."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from visionloop.http import wire
from visionloop.http.deps import BaseUrlDep, CoreDep, PageDep, SearchCaller
from visionloop.http.schemas import SearchRequest
from visionloop.http.search_query import parse_query
from visionloop.http.strict_json import StrictJSONRoute
from visionloop.services.paging import Page

router = APIRouter(tags=["search"], route_class=StrictJSONRoute)


@router.post("/searches")
def post_search(body: SearchRequest, caller: SearchCaller, core: CoreDep, page: PageDep,
                base_url: BaseUrlDep) -> dict[str, Any]:
    core.usage.check(caller)
    terms = parse_query(body.query)
    if body.pagination is not None and (body.pagination.page or body.pagination.per_page):
        page = Page.of(body.pagination.page, body.pagination.per_page, default=page.per_page,
                       cap=core.settings.max_per_page)
    result = core.search.search(caller, terms, page, body.model_dump(mode="json", include={"query": True, "pagination": {"page", "per_page"}}))
    return wire.ok(id=result.id, hits=[{"score": round(h.score, 6),
                                        "input": wire.input_obj(h.input, base_url=base_url)} for h in result.hits])


@router.get("/searches/metrics")
def search_metrics(caller: SearchCaller, core: CoreDep) -> dict[str, Any]:
    """Click-through rate, MRR and mean clicked rank per query kind (also per UTC day and per ranking
    version), from the app's remembered searches (the latest 10,000) and the clicks reported on them."""
    return wire.ok(search_metrics=core.learning.clicks.metrics(caller.app_id))
