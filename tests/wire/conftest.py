"""The wire replay runs against the same kind of live server as the official-client tests."""

from __future__ import annotations

from tests.clients.fixtures import live_server  # noqa: F401 - a fixture, found by name
