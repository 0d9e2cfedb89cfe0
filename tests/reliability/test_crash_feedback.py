"""Durability: every feedback answered 10000 survives a SIGKILL of the server mid-stream.

A real ``visionloop serve`` process, a real predict, client threads sending feedback as fast as
they can, SIGKILL while they do, a restart on the same data dir, and the log read back over HTTP.
"""

from __future__ import annotations

import base64
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.helpers import clean_env, free_port

REPO = Path(__file__).resolve().parents[2]
GENERAL = "aaa03c23b3724a16a56b629203edc62c"
THREADS = 4
KILL_AFTER_ACKS = 60




def _env() -> dict[str, str]:
    return clean_env(VISIONLOOP_FEEDBACK_RATE_LIMIT="0")  # this test floods on purpose


def _cli(data: Path, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "visionloop", *args, "--data-dir", str(data)], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


class Server:
    def __init__(self, data: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "visionloop", "serve", "--port", str(self.port),
                                      "--data-dir", str(data), "--log-level", "warning"],
                                     cwd=REPO, env=_env(), stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, key: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the server exited during start-up"
            try:
                if httpx.get(f"{self.url}/v2/models", headers={"Authorization": f"Key {key}"}, timeout=2).status_code \
                        == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("the server did not become ready")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.log.close()


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.slow
def test_acknowledged_feedback_survives_sigkill(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "server.log"
    _cli(data, "apps", "create", "crash")  # also creates the database, before the server starts
    server = Server(data, log)  # starting (~6 s) while the key is made
    try:
        key = _cli(data, "keys", "create", "--app", "crash").splitlines()[-1]
        auth = {"Authorization": f"Key {key}"}
        server.wait_ready(key)
        r = httpx.post(f"{server.url}/v2/models/{GENERAL}/outputs", headers=auth, timeout=60,
                       json={"inputs": [{"data": {"image": {"base64": _png()}}}]})
        assert r.status_code == 200, r.text
        output_id = r.json()["outputs"][0]["id"]

        acked: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client(t: int) -> None:
            with httpx.Client(base_url=server.url, headers=auth, timeout=5) as http:
                i = 0
                while not stop.is_set():
                    end_user = f"t{t}-{i}"
                    i += 1
                    body = {"input": {"data": {"concepts": [{"id": "red-thing", "value": True}]},
                                      "feedback_info": {"event_type": "annotation", "output_id": output_id,
                                                        "end_user_id": end_user, "session_id": "crash"}}}
                    try:
                        r = http.post(f"/v2/models/{GENERAL}/feedback", json=body)
                    except httpx.HTTPError:
                        return  # the server is gone
                    if r.status_code == 200 and r.json()["status"]["code"] == 10000:
                        with lock:
                            acked.append(end_user)

        threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(THREADS)]
        for th in threads:
            th.start()
        deadline = time.monotonic() + 15
        while len(acked) < KILL_AFTER_ACKS and time.monotonic() < deadline:
            time.sleep(0.01)
        server.kill()  # mid-stream: the threads are still sending
        stop.set()
        for th in threads:
            th.join(timeout=10)
        assert len(acked) >= KILL_AFTER_ACKS, f"only {len(acked)} acknowledged before the deadline"

        server = Server(data, log)
        server.wait_ready(key)
        events: list[dict] = []
        page = 1
        while True:
            r = httpx.get(f"{server.url}/v2/feedback", headers=auth, timeout=10,
                          params={"session_id": "crash", "page": page, "per_page": 1000})
            assert r.status_code == 200, r.text
            batch = r.json()["feedback"]
            if not batch:
                break
            events += batch
            page += 1
        stored = [e["end_user_id"] for e in events]
        missing = set(acked) - set(stored)
        assert not missing, f"{len(missing)} acknowledged feedback events were lost: {sorted(missing)[:5]}"
        assert len(stored) == len(set(stored))  # and nothing was stored twice
        assert all(e["data"]["concepts"] == [{"id": "red-thing", "name": "red-thing", "value": 1.0,
                                              "source": e["data"]["concepts"][0]["source"]}] for e in events)
    finally:
        server.kill()
