"""Probes for load balancers, unauthenticated and telling nothing beyond up or not:
``GET /healthz`` (the process answers) and ``GET /readyz`` (the database answers and the
networks are loaded, so a request now is served at full speed).

The networks load lazily; the first readiness probe starts loading them in the background
(answering 503 until they are), so a balancer's probes warm a new server before it gets traffic.
"""

from __future__ import annotations

import logging
import threading

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from visionloop.http.deps import CoreDep

log = logging.getLogger("visionloop.http")
router = APIRouter()
_STARTING = threading.Lock()


@router.get("/healthz", include_in_schema=False)
async def healthz() -> JSONResponse:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request, core: CoreDep) -> JSONResponse:
    try:
        with core.db.reading() as c:
            c.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.warning("readiness: the database does not answer: %s", exc)
        return JSONResponse({"status": "unavailable", "reason": "database"}, status_code=503)
    if not core.runtime.loaded:
        with _STARTING:
            if getattr(request.app.state, "warming", None) is None:
                request.app.state.warming = threading.Thread(target=core.runtime.warm, name="visionloop-warm",
                                                             daemon=True)
                request.app.state.warming.start()
        return JSONResponse({"status": "unavailable", "reason": "models loading"}, status_code=503)
    return JSONResponse({"status": "ready"})
