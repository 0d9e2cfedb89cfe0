"""Session fixtures shared by tests/clients and tests/wire (imported by their conftest files)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clients import venvs
from tests.clients.live import ImageHost, LiveServer, start_live_server
from tests.clients.photos import Photo, make_photos

# tests/clients and tests/wire each import ``live_server`` into their conftest, which makes two
# session fixtures; they share one server process, stopped when the last of them ends.
_shared: dict[str, Any] = {"server": None, "users": 0}


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``python -m visionloop serve`` on a free loopback port, with app ``selftest-app`` and a key
    made by the CLI on the same data dir. Unpacks as ``base_url, key, app_id``."""
    if _shared["server"] is None or _shared["server"].process.poll() is not None:
        _shared["server"] = start_live_server(tmp_path_factory.mktemp("live-server"))
    server: LiveServer = _shared["server"]
    _shared["users"] += 1
    try:
        yield server
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            server.stop()
            _shared["server"] = None


@pytest.fixture(scope="session")
def image_host() -> Iterator[ImageHost]:
    host = ImageHost()
    try:
        yield host
    finally:
        host.close()


@pytest.fixture(scope="session")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Photo]:
    """Real photos as JPEG files (cat, face, coffee; see ``tests/clients/photos.py``)."""
    try:
        return make_photos(tmp_path_factory.mktemp("photos"))
    except ImportError as exc:
        venvs.skip_or_fail(f"scikit-image is needed for the sample photos: {exc}")
        raise


@pytest.fixture(scope="session")
def client_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HOME for client processes (keeps ~/.clarifai/config and friends out)."""
    return tmp_path_factory.mktemp("client-home")


def _build(fn, *args):  # type: ignore[no-untyped-def]
    try:
        return fn(*args)
    except venvs.Unavailable as exc:
        venvs.skip_or_fail(f"client environment unavailable: {exc}")


@pytest.fixture(scope="session")
def clarifai_py_python() -> Path:
    """python of the venv with clarifai==2.6.2 (built once under .cache/client-venvs)."""
    return _build(venvs.python_client, venvs.CLARIFAI_PY)


@pytest.fixture(scope="session")
def clarifai_grpc_python() -> Path:
    """python of the venv with clarifai-grpc==12.6.0."""
    return _build(venvs.python_client, venvs.CLARIFAI_GRPC)


@pytest.fixture(scope="session")
def clarifai_js_modules() -> Path:
    """node_modules with npm clarifai@2.9.1."""
    return _build(venvs.js_client)
