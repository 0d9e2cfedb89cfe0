"""Shared fixtures: a VisionLoop on a temporary data dir, a client speaking HTTP to it, API keys."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.helpers import Api, ImageServer
from visionloop.config import load_settings
from visionloop.core import VisionLoop
from visionloop.http.app import create_app
from visionloop.inference.runtime import ModelRuntime
from visionloop.services.apps import SCOPES


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


# -- which database ---------------------------------------------------------------------------------
# scripts/test runs the suite on SQLite, then again with VISIONLOOP_TEST_DATABASE=postgres: that pass
# keeps only the tests that use a VisionLoop (the ``core`` fixture) or are marked ``postgres``, and
# gives each test its own database cloned from a template migrated once (tests/pgserver.py).
TEST_DATABASE = os.environ.get("VISIONLOOP_TEST_DATABASE", "sqlite").strip().lower() or "sqlite"
if TEST_DATABASE not in ("sqlite", "postgres"):
    raise pytest.UsageError(f"VISIONLOOP_TEST_DATABASE={TEST_DATABASE!r}: expected sqlite or postgres")
PG_TEMPLATE = "visionloop_template"


def pytest_report_header(config: pytest.Config) -> str:
    return f"visionloop test database: {TEST_DATABASE} (VISIONLOOP_TEST_DATABASE)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if TEST_DATABASE != "postgres":
        return
    keep, drop = [], []
    for item in items:
        uses_db = "core" in getattr(item, "fixturenames", ()) or item.get_closest_marker("postgres")
        (keep if uses_db else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    """The suite's PostgreSQL server (PostgreSQL pass only), with a template database at the newest schema."""
    if TEST_DATABASE != "postgres":
        pytest.skip("needs PostgreSQL: runs in the VISIONLOOP_TEST_DATABASE=postgres pass of scripts/test")
    from tests import pgserver
    from visionloop.store.db import Database
    from visionloop.store.migrate import upgrade

    server = pgserver.start()
    try:
        pgserver.execute_autocommit(server, f"CREATE DATABASE {PG_TEMPLATE}")
        db = Database(server.url(PG_TEMPLATE))
        try:
            upgrade(db.engine)  # the Alembic migrations, once; every test database is a copy
        finally:
            db.dispose()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def pg_clones(pg_server: Any) -> Iterator[Any]:
    from tests import pgserver

    clones = pgserver.Clones(pg_server, PG_TEMPLATE, prefix=f"test_{os.getpid()}")
    try:
        yield clones
    finally:
        clones.close()


@pytest.fixture
def database_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """'' (SQLite in the data dir) or a fresh PostgreSQL database copied from the migrated template.
    It is also VISIONLOOP_DATABASE_URL for the test, so CLI processes a test starts use it too."""
    if TEST_DATABASE != "postgres":
        monkeypatch.delenv("VISIONLOOP_DATABASE_URL", raising=False)
        yield ""
        return
    clones = request.getfixturevalue("pg_clones")
    name = clones.take()
    url = clones.server.url(name)
    monkeypatch.setenv("VISIONLOOP_DATABASE_URL", url)
    try:
        yield url
    finally:
        clones.release(name)


@pytest.fixture
def core(tmp_path: Path, settings_overrides: dict[str, Any], runtime: ModelRuntime,
         database_url: str) -> Iterator[VisionLoop]:
    settings = load_settings({"data_dir": tmp_path / "data", "database_url": database_url, **settings_overrides},
                             environ={})
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


S3_BUCKET = "visionloop-test"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """An S3-compatible server (SeaweedFS, tests/s3server.py) with one bucket, for the S3 blob store."""
    from tests import s3server

    server = s3server.start()
    try:
        s3server.make_bucket(server, S3_BUCKET)
        yield server
    finally:
        server.stop()


@pytest.fixture
def blob_url(s3_server: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """A key prefix of its own in the test bucket, with the AWS_* variables pointing at the server."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return f"s3://{S3_BUCKET}/" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:16]
