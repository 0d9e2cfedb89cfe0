"""The operator console at /console: server-rendered pages over the same services as the API.

- :mod:`.session`: sign-in with an API key, the signed session cookie, CSRF tokens;
- :mod:`.render`: templates, security headers, errors as pages, the route class;
- :mod:`.pages`: the overview, sign-in and sign-out; :mod:`.models`: versions, training,
  promotion and rollback, quality; :mod:`.feedback`: the feedback log; :mod:`.end_users`: end
  users and erasure; :mod:`.review`: the review queue; :mod:`.search`:
  search metrics.

A page asks for the scope the API asks for the same data (``models``, ``feedback_admin``,
``inputs``, ``search``) and says which one the signed-in key lacks; a key sees its own app only.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from visionloop.http.console import end_users, feedback, models, pages, review, search
from visionloop.http.console.render import STATIC_DIR, STATIC_URL, VENDOR_DIR, VENDOR_URL


def install_console(app: FastAPI) -> None:
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="console-static")
    app.mount(VENDOR_URL, StaticFiles(directory=VENDOR_DIR), name="console-vendor")
    for module in (pages, models, feedback, end_users, review, search):
        app.include_router(module.router, prefix="/console", include_in_schema=False)
