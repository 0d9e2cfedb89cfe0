"""Fixtures for the official-client tests: a live server, a loopback image host, client envs.

tests/wire/conftest.py re-uses ``live_server`` from ``tests.clients.fixtures``.
"""

from __future__ import annotations

import pytest

from tests.clients.fixtures import (  # noqa: F401 - fixtures are found by name
    clarifai_grpc_python,
    clarifai_js_modules,
    clarifai_py_python,
    client_home,
    image_host,
    live_server,
    photos,
)


@pytest.fixture(scope="module", params=["short", "app"])
def variant(request: pytest.FixtureRequest) -> str:
    """Each client module runs once on the short paths and once on the app-scoped ones."""
    return request.param
