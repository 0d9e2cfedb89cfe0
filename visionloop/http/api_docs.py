"""The API's own documentation pages, /docs (Swagger UI) and /redoc (ReDoc), served offline.

FastAPI's default pages load their scripts, styles, fonts and favicon from CDNs, so with no
network they are blank. The assets are vendored from the npm registry (``swagger-ui-dist`` and
``redoc``, with their licence files) under ``static/`` and served from the package itself;
``static/README.md`` says which versions and how to refresh them.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_URL = "/static/docs"


def install_api_docs(app: FastAPI) -> None:
    """Serve the docs pages on ``app`` (made with ``docs_url=None, redoc_url=None``) from local assets."""
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="api-docs-static")
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", ""))
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/swagger-ui/favicon-32x32.png",
            oauth2_redirect_url=f"{root}{oauth2_redirect}",
            # no badge fetched from the public validator service
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None})

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", ""))
        return get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                              redoc_js_url=f"{root}{STATIC_URL}/redoc/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{STATIC_URL}/swagger-ui/favicon-32x32.png",
                              with_google_fonts=False)
