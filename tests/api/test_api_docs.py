"""/docs and /redoc work with no network: the pages name no other host, and their assets are served."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.helpers import free_port
from visionloop.config import load_settings
from visionloop.http.api_docs import STATIC_DIR
from visionloop.http.app import create_app


@pytest.fixture
def docs_client(tmp_path: Path) -> TestClient:
    """The app without its lifespan: the docs pages need no database."""
    return TestClient(create_app(load_settings({"data_dir": tmp_path}, environ={})))


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_everything_from_the_server_itself(docs_client: TestClient, page: str) -> None:
    r = docs_client.get(page)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "://" not in r.text, re.findall(r"\w+://[^\"' ]+", r.text)  # no CDN, no fonts, no favicon elsewhere
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", r.text)
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        got = docs_client.get(asset)
        assert got.status_code == 200 and got.content, asset
    assert "/openapi.json" in r.text
    assert docs_client.get("/openapi.json").json()["info"]["title"] == "visionloop"


def test_swagger_ui_asks_no_validator_service(docs_client: TestClient) -> None:
    assert '"validatorUrl": null' in docs_client.get("/docs").text


def test_the_vendored_assets_keep_their_licences() -> None:
    for folder, script in (("swagger-ui", "swagger-ui-bundle.js"), ("redoc", "redoc.standalone.js")):
        assert (STATIC_DIR / folder / "LICENSE").stat().st_size > 500
        assert (STATIC_DIR / folder / f"{script}.LICENSE.txt").exists()


@pytest.fixture
def docs_server(tmp_path: Path) -> Iterator[str]:
    """The app on a loopback port, without its lifespan (no models, no database: the pages need neither)."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(load_settings({"data_dir": tmp_path}, environ={})),
                                           host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.mark.slow
@pytest.mark.parametrize(("page", "rendered"), [("/docs", "opblock-summary-path"), ("/redoc", "/v2/inputs")])
def test_a_browser_with_no_network_renders_the_docs(docs_server: str, page: str, rendered: str) -> None:
    """Headless Chromium (installed by scripts/install test) resolving no host but 127.0.0.1 draws
    every route: with CDN assets the page stayed blank."""
    chromium = shutil.which("chromium")
    assert chromium, "chromium is missing: scripts/install test installs it"
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                          "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                          "--virtual-time-budget=15000", "--dump-dom", docs_server + page],
                         capture_output=True, text=True, timeout=120).stdout
    assert dom.count(rendered) >= 5, dom[-2000:]
