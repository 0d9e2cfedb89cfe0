"""Shared fixtures: a VisionLoop on a temporary data dir, a client speaking HTTP to it, API keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from visionloop.config import load_settings
from visionloop.core import VisionLoop
from visionloop.http.app import create_app
from visionloop.models.runtime import ModelRuntime
from visionloop.services.apps import SCOPES

from tests.helpers import Api, ImageServer


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Tests may reach the loopback image server; everything else keeps the SSRF rules."""
    return {"fetch_allow_hosts": "127.0.0.1"}


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    server = ImageServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def runtime() -> ModelRuntime:
    """The networks load once per test session, as once per server process."""
    return ModelRuntime()


@pytest.fixture
def core(tmp_path: Path, settings_overrides: dict[str, Any], runtime: ModelRuntime) -> Iterator[VisionLoop]:
    settings = load_settings({"data_dir": tmp_path / "data", **settings_overrides}, environ={})
    vl = VisionLoop(settings, runtime)
    yield vl
    vl.close()


@pytest.fixture
def client(core: VisionLoop) -> Iterator[TestClient]:
    with TestClient(create_app(core.settings, core), raise_server_exceptions=False) as c:
        yield c


def make_api(core: VisionLoop, client: TestClient, app_id: str, scopes: tuple[str, ...] = SCOPES) -> Api:
    if app_id not in {a.id for a in core.apps.list_apps()}:
        core.apps.create_app(app_id)
    _, secret = core.apps.create_key(app_id, scopes)
    return Api(client, secret, app_id)


@pytest.fixture
def api(core: VisionLoop, client: TestClient) -> Api:
    return make_api(core, client, "app-a")


@pytest.fixture
def other_api(core: VisionLoop, client: TestClient) -> Api:
    return make_api(core, client, "app-b")
