"""Alarms: ``GET /alarms`` lists the key's app's input drift, feedback quality and search alarms
(docs/alarms.md), firing first. It needs ``feedback_admin``: alarms are read from every end user's
feedback, as the feedback log is."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from visionloop.http import wire
from visionloop.http.deps import CoreDep, FeedbackAdminCaller, PageDep
from visionloop.http.strict_json import StrictJSONRoute

router = APIRouter(tags=["alarms"], route_class=StrictJSONRoute)

State = Annotated[Literal["firing", "resolved"] | None,
                  Query(description="Only alarms in this state (default: both, firing first)")]


@router.get("/alarms")
def list_alarms(caller: FeedbackAdminCaller, core: CoreDep, page: PageDep, state: State = None) -> dict[str, Any]:
    """The app's alarms: kind, model, concept or query kind, state and since when, the figure, the
    threshold it crossed and the evidence behind it; another app's are never shown."""
    return wire.ok(alarms=core.alarms.list(caller.app_id, page, state))
