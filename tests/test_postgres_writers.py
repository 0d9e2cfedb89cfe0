"""Two ``visionloop serve`` processes on one PostgreSQL database, written to at once.

Both start together on an empty database (so they race to migrate it, seed the built-in models
and bootstrap the first key), share one data dir (blobs), and then take concurrent inputs,
predictions, metadata merges on one hot input and, where the route exists, feedback, from
client threads alternating between them. Afterwards every acknowledged write is in the
database exactly once, no id was minted twice, usage the usage counter adds up, and each server reads
what the other wrote.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from tests import pgserver
from tests.helpers import b64, clean_env, free_port, png_bytes
from visionloop.inference.catalog import GENERAL
from visionloop.store.tables import Concept, FeedbackEvent, Input, InputConcept, Output, Usage

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(900)]

REPO_ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 40          # requests of each kind
CLIENT_THREADS = 8
READY_TIMEOUT = 120.0


class Server:
    def __init__(self, url: str, data_dir: Path, log_path: Path, **settings: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = clean_env(**settings)
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "visionloop", "serve", "--port", str(self.port), "--data-dir", str(data_dir),
                 "--database-url", url, "--log-level", "warning"],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(self.base + "/v2/models", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # 401 without a key: it answers
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"serve did not answer in {READY_TIMEOUT:.0f} s:\n{self.log()[-3000:]}")

    def call(self, key: str, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + "/v2" + path, data=data, method=method,
                                     headers={"Authorization": f"Key {key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, json.loads(exc.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)


def _image(i: int) -> dict[str, str]:
    return {"base64": b64(png_bytes(((i * 37) % 256, (i * 91) % 256, (i * 13) % 256), size=(24, 24)))}


def test_two_servers_on_one_database_keep_every_acknowledged_write(pg_server: pgserver.PgServer,
                                                                    tmp_path: Path) -> None:
    pgserver.execute_autocommit(pg_server, "CREATE DATABASE writers")  # empty: both servers migrate it at once
    url = pg_server.url("writers")
    data_dir = tmp_path / "shared-data"
    servers = [Server(url, data_dir, tmp_path / f"serve-{n}.log") for n in range(2)]
    engine = create_engine(url)
    try:
        for server in servers:
            server.wait_ready()
        keys = [k for server in servers for k in re.findall(r"^ {4}([0-9a-f]{32})$", server.log(), re.M)]
        assert len(keys) == 1, "exactly one of the two servers bootstraps the first key"
        key = keys[0]
        status, _ = servers[0].call(key, "POST", "/inputs", {"inputs": [
            {"id": "hot", "data": {"image": _image(0), "metadata": {}}}]})
        assert status == 200

        acked: dict[str, list[Any]] = {"inputs": [], "outputs": [], "merged": [], "feedback": []}
        lock = threading.Lock()
        failures: list[str] = []

        def ack(kind: str, values: list[Any]) -> None:
            with lock:
                acked[kind].extend(values)

        def add_inputs(i: int, server: Server) -> None:
            status, body = server.call(key, "POST", "/inputs", {"inputs": [
                {"id": f"c-{i}", "data": {"image": _image(2 * i + 1), "metadata": {"i": i},
                                         "concepts": [{"id": "shared-new"}, {"id": f"own-{i}"}]}},
                {"data": {"image": _image(2 * i + 2), "concepts": [{"id": "shared-new", "value": False}]}}]})
            if status != 200:
                failures.append(f"inputs {i}: {status} {body}")
                return
            ack("inputs", [item["id"] for item in body["inputs"]])

        def predict(i: int, server: Server) -> None:
            status, body = server.call(key, "POST", f"/models/{GENERAL.id}/outputs",
                                       {"inputs": [{"data": {"image": _image(500 + i)}},
                                                   {"data": {"image": _image(900 + i)}}]})
            if status != 200:
                failures.append(f"predict {i}: {status} {body}")
                return
            ids = [o["id"] for o in body["outputs"]]
            ack("outputs", ids)
            other = servers[(i + 1) % 2]  # feedback on the other server, about this one's output
            status, body = other.call(key, "POST", f"/models/{GENERAL.id}/feedback", {"input": {
                "data": {"concepts": [{"id": "shared-new", "value": True}]},
                "feedback_info": {"event_type": "annotation", "output_id": ids[0], "end_user_id": f"user-{i}",
                                  "session_id": "writers"}}})
            if status != 200:
                failures.append(f"feedback {i}: {status} {body}")
                return
            ack("feedback", [ids[0]])

        def merge(i: int, server: Server) -> None:
            status, body = server.call(key, "PATCH", "/inputs", {"action": "merge", "inputs": [
                {"id": "hot", "data": {"metadata": {f"k{i}": i}}}]})
            if status != 200:
                failures.append(f"merge {i}: {status} {body}")
                return
            ack("merged", [f"k{i}"])

        jobs = [(fn, i) for i in range(ROUNDS) for fn in (add_inputs, predict, merge)]
        with ThreadPoolExecutor(CLIENT_THREADS) as pool:
            list(pool.map(lambda job: job[0](job[1], servers[job[1] % 2]), jobs))
        assert not failures, failures[:5]

        # no id minted twice, every acknowledged write stored, nothing else
        for kind in ("inputs", "outputs"):
            dupes = [i for i, n in Counter(acked[kind]).items() if n > 1]
            assert not dupes, f"{kind} ids acknowledged twice: {dupes[:5]}"
        assert len(acked["inputs"]) == 2 * ROUNDS and len(acked["outputs"]) == 2 * ROUNDS
        with engine.connect() as conn:
            stored_inputs = list(conn.scalars(select(Input.id).where(Input.app_id == "main")))
            assert sorted(stored_inputs) == sorted(acked["inputs"] + ["hot"])
            stored_outputs = list(conn.scalars(select(Output.id).where(Output.app_id == "main")))
            assert sorted(stored_outputs) == sorted(acked["outputs"])
            assert list(conn.scalars(select(Concept.id).where(Concept.app_id == "main", Concept.id == "shared-new")))\
                == ["shared-new"]
            annotated = conn.scalar(select(func.count()).select_from(InputConcept)
                                    .where(InputConcept.app_id == "main", InputConcept.concept_id == "shared-new"))
            assert annotated == 2 * ROUNDS
            hot = conn.scalar(select(Input.meta).where(Input.app_id == "main", Input.id == "hot"))
            assert sorted(hot) == sorted(acked["merged"]), "a concurrent merge was lost"
            usage = dict(conn.execute(select(Usage.op, func.sum(Usage.count)).where(Usage.app_id == "main")
                                      .group_by(Usage.op)).all())
            assert usage.get("predict") == 2 * ROUNDS  # one counter row, incremented by both servers
            assert usage.get("inputs") == len(acked["inputs"]) + 1  # and "hot"
            events = list(conn.scalars(select(FeedbackEvent.output_id).where(FeedbackEvent.app_id == "main")))
            assert sorted(events) == sorted(acked["feedback"]) and len(events) == ROUNDS
            assert len(set(conn.scalars(select(FeedbackEvent.id)))) == ROUNDS

        # each server reads what the other wrote, blobs included (the data dir is shared)
        for n, input_id in enumerate(acked["inputs"][:6]):
            server = servers[n % 2]
            status, body = server.call(key, "GET", f"/inputs/{input_id}")
            assert status == 200 and body["input"]["id"] == input_id
            status, body = server.call(key, "POST", f"/models/{GENERAL.id}/outputs", {"inputs": [{"id": input_id}]})
            assert status == 200, body
        for server in servers:
            assert "Traceback" not in server.log(), server.log()[-3000:]
    finally:
        for server in servers:
            server.stop()
        engine.dispose()
