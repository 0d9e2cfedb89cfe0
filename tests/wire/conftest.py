"""The wire replay runs against the same kind of live server as the official-client tests, with
the loopback image host serving a real photo where captures name public image URLs."""

from __future__ import annotations

from tests.clients.fixtures import image_host, live_server, photos  # noqa: F401 - fixtures, found by name
