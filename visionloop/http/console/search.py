"""/console/search: how search results are used. Click-through rate, MRR and mean clicked rank by
query kind, per ranking (a new ranking version shows as a before and an after) and per day, with
their intervals; where on the page users click; and the top queries with the hits users clicked.
Needs ``search``, as ``GET /v2/searches/metrics`` (the same figures) does."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from visionloop.http.console import charts
from visionloop.http.console.render import ConsoleRoute, page
from visionloop.http.console.session import SessionDep, need
from visionloop.http.deps import CoreDep

router = APIRouter(route_class=ConsoleRoute)


@router.get("/search")
def search_page(request: Request, session: SessionDep, core: CoreDep) -> Response:
    need(session, "search", "The search page")
    metrics = core.learning.clicks.metrics(session.caller.app_id)
    return page(request, "search.html", {"metrics": metrics,
                                         "histogram": charts.click_positions(metrics["click_positions"]),
                                         "over_time": charts.search_over_time(metrics["by_day"]),
                                         "top": core.console.top_queries(session.caller.app_id)})
