"""Reading the step results that the client scripts print."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.clients.live import LiveServer


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def value(result: dict[str, Any], name: str, server: LiveServer | None = None) -> Any:
    """The value a script step returned; a failed step fails the test with the client's error
    (HTTP status and body when there was a response) and the server log's tail."""
    steps = result["steps"]
    assert name in steps, f"the script recorded no step {name!r} (steps: {sorted(steps)})"
    step = steps[name]
    if not step["ok"]:
        err = dict(step["error"])
        trace = err.pop("traceback", "")
        msg = f"client step {name!r} failed: {json.dumps(err, indent=1, default=str)}\n{trace}"
        if server is not None:
            msg += f"\n--- server log tail ---\n{server.log_tail()}"
        raise AssertionError(msg)
    return step["value"]


def error(result: dict[str, Any], name: str) -> dict[str, Any]:
    """The error a step was expected to raise."""
    step = result["steps"][name]
    assert not step["ok"], f"step {name!r} was expected to fail but returned {step['value']!r}"
    return step["error"]
