"""What the security tests share: the route table with each route's scope, and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.helpers import b64, clean_env, png_bytes
from visionloop.http.app import APP_SCOPED, ROUTERS
from visionloop.http.routes import models as model_routes

REPO = Path(__file__).resolve().parents[2]
GENERAL = "aaa03c23b3724a16a56b629203edc62c"
PNG = b64(png_bytes((200, 40, 40), (24, 24)))


def _scopes_of(dependant: Any) -> list[str]:
    """Scopes required by ``scoped`` dependencies (routes that check the key themselves say it as x-scope)."""
    out = []
    for dep in dependant.dependencies:
        name = getattr(dep.call, "__name__", "")
        if name.startswith("require_"):
            out.append(name.removeprefix("require_"))
        out += _scopes_of(dep)
    return out


def route_table() -> list[tuple[str, str, str]]:
    """(METHOD, full path, scope) of every route: the short path, the app-scoped copy, the user-scoped one."""
    out = []
    for router in ROUTERS:
        for route in router.routes:
            declared = {(route.openapi_extra or {}).get("x-scope", "")} - {""}
            (scope,) = set(_scopes_of(route.dependant)) | declared or {""}
            for method in sorted(route.methods):
                out += [(method, "/v2" + route.path, scope), (method, APP_SCOPED + route.path, scope)]
    for route in model_routes.user_router.routes:
        (scope,) = set(_scopes_of(route.dependant))
        out += [(method, "/v2/users/{user_id}" + route.path, scope) for method in sorted(route.methods)]
    return out


ROUTES = route_table()


def run_cli(data: Path, *args: str, database_url: str = "") -> subprocess.CompletedProcess[str]:
    env = clean_env()
    where = ["--data-dir", str(data)] + (["--database-url", database_url] if database_url else [])
    return subprocess.run([sys.executable, "-m", "visionloop", *args, *where], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
