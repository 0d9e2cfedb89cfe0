"""A real ``visionloop serve`` process on a loopback port, and a loopback image host.

The official clients run in their own virtual environments (see ``venvs.py``), so they can only
reach the server over real HTTP: these helpers start the server exactly as a user would (the CLI
creates the app and the key, ``serve`` answers on 127.0.0.1) and stop it at the end.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.helpers import clean_env, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
APP_ID = "selftest-app"
READY_TIMEOUT = 60.0


def server_env() -> dict[str, str]:
    """A clean environment plus loopback image fetching for the URL tests."""
    return clean_env(VISIONLOOP_FETCH_ALLOW_HOSTS="127.0.0.1")


def _cli(args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run([sys.executable, "-m", "visionloop", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"visionloop {' '.join(args)} exited {proc.returncode}:\n"
                           f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc.stdout


@dataclasses.dataclass
class LiveServer:
    """A running server. Unpacks as ``base_url, key, app_id = live_server``."""

    base_url: str
    key: str
    app_id: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]

    def __iter__(self) -> Iterator[str]:
        return iter((self.base_url, self.key, self.app_id))

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.key}"}

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def request(self, method: str, path: str, body: Any = None, *, query: str = "",
                headers: dict[str, str] | None = None, raw: bytes | None = None,
                timeout: float = 30.0) -> tuple[int, Any]:
        """One HTTP request; returns (status, parsed JSON body or the text when not JSON)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        hdrs = dict(self.auth if headers is None else headers)
        if data is not None and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = "application/json"
        url = self.base_url + path + (f"?{query}" if query else "")
        req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
            exc.close()
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, payload.decode(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def _wait_ready(server: LiveServer) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            server.request("GET", "/v2/models", timeout=2.0)
            return True
        except (OSError, urllib.error.URLError):
            time.sleep(0.1)
    return False


def start_live_server(workdir: Path, app_id: str = APP_ID) -> LiveServer:
    """Create the app and a key with the CLI, then serve on a free loopback port."""
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    env = server_env()
    _cli(["apps", "create", app_id, "--data-dir", str(data_dir)], env)
    out = _cli(["keys", "create", "--app", app_id, "--data-dir", str(data_dir)], env).split()
    if not out:
        raise RuntimeError("visionloop keys create printed no key on stdout")
    key = out[-1]
    last_log = ""
    for attempt in range(3):  # a free port can be taken between the probe and the bind
        port = free_port()
        log_path = workdir / f"server-{attempt}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "visionloop", "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--data-dir", str(data_dir), "--log-level", "warning"],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        server = LiveServer(f"http://127.0.0.1:{port}", key, app_id, data_dir, log_path, proc)
        if _wait_ready(server):
            return server
        server.stop()
        last_log = server.log_tail()
        if "address already in use" not in last_log.lower():
            break
    raise RuntimeError(f"visionloop serve did not answer within {READY_TIMEOUT:.0f}s; its log:\n{last_log}")


class ImageHost:
    """A loopback HTTP server (stdlib, in a thread) handing out registered bytes."""

    def __init__(self) -> None:
        files: dict[str, tuple[str, bytes]] = {}
        self.files = files
        self.hits: list[str] = []
        hits = self.hits

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                hits.append(self.path)
                found = files.get(self.path)
                if found is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                ctype, data = found
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="image-host", daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, path: str, data: bytes, content_type: str = "image/png") -> str:
        """Serve ``data`` at ``path``; returns its absolute URL."""
        if not path.startswith("/"):
            path = "/" + path
        self.files[path] = (content_type, data)
        return self.base_url + path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
