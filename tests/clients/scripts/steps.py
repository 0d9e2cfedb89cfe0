"""Step recorder shared by the client scripts (runs inside the client venvs: stdlib only).

Each step runs in isolation; its value or its error is recorded, so one incompatibility does not
hide the others. The scripts print ``{"steps": {...}}`` as their last stdout line.
"""

import json
import sys
import traceback

MAX_ITEMS = 2000  # a generator that pages forever (a server ignoring ?page=) stops here


class Steps:
    def __init__(self):
        self.results = {}

    def run(self, name, fn, *args, **kwargs):
        try:
            value = fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure is data for the test
            self.results[name] = {"ok": False, "error": describe(exc)}
            return None
        self.results[name] = {"ok": True, "value": value}
        return value

    def obtain(self, name, fn, *args, **kwargs):
        """Like run, for a step whose result is an object (a client, a stub): it is returned, and
        only success is recorded."""
        holder = []
        self.run(name, lambda: holder.append(fn(*args, **kwargs)))
        return holder[0] if holder else None

    def emit(self):
        sys.stdout.write("\n" + json.dumps({"steps": self.results}, default=str) + "\n")
        sys.stdout.flush()


def describe(exc):
    """An error as data: the HTTP status and body when the client kept the response."""
    out = {"type": type(exc).__name__, "message": str(exc)[:2000],
           "traceback": traceback.format_exc()[-3000:]}
    response = getattr(exc, "response", None)
    if response is not None and hasattr(response, "status_code"):
        out["http_status"] = response.status_code
        out["url"] = getattr(response, "url", None)
        try:
            out["body"] = response.json()
        except Exception:  # noqa: BLE001
            out["body"] = getattr(response, "text", None)
    return out


def take(iterable, limit=MAX_ITEMS):
    """Drain a paging generator, stopping (and saying so) at ``limit`` items."""
    items = []
    for item in iterable:
        items.append(item)
        if len(items) >= limit:
            raise RuntimeError("paging did not end after %d items (is ?page= ignored?)" % limit)
    return items


def read_config():
    return json.loads(sys.stdin.read())
