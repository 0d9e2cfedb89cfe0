"""Every security test runs without an allow-list: loopback is as forbidden to image URLs here as
in production."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """No allow-list: loopback is as forbidden to image URLs here as in production."""
    return {"feedback_rate_limit": 0}
