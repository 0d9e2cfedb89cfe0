"""Crash safety under mixed writes: SIGKILL a real server while inputs, predictions, feedback and
training requests are all being written, restart it on the same data directory, and check that

- the database is consistent (``PRAGMA integrity_check`` and ``foreign_key_check``, before and
  after the restart);
- every acknowledged write is there: inputs, prediction outputs, feedback events, model versions;
- the vector index agrees with the database: it was saved before most inputs existed, so its
  stamp no longer matches and it is rebuilt on first use; a visual search by each of the last
  acknowledged inputs finds that input first, and after a clean stop the index holds exactly the
  stored inputs;
- background jobs resume: training versions that were queued (or training) at the kill are
  trained by the restarted server's worker.

(Feedback alone under SIGKILL is tests/reliability/test_crash_feedback.py; this reuses its server helpers.)
"""

from __future__ import annotations

import base64
import io
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.reliability.test_crash_feedback import GENERAL, Server, _cli
from visionloop.config import load_settings
from visionloop.core import VisionLoop
from visionloop.inference.runtime import ModelRuntime
from visionloop.store.vectors import key_for

APP = "crash-mixed"
WRITERS = 4
KILL_AFTER = 40          # acknowledged writes of every kind together before the kill
UNFINISHED = (21101, 21103)  # MODEL_TRAINING, MODEL_QUEUED_FOR_TRAINING


def _image(i: int) -> tuple[str, bool]:
    """A distinct little picture; every other one is red (the concept the versions learn)."""
    red = i % 2 == 0
    buf = io.BytesIO()
    img = Image.new("RGB", (48, 48), (220, 20 + i % 50, 20) if red else (20, 20 + i % 50, 220))
    img.paste((i * 37 % 256, i * 91 % 256, i * 53 % 256), (i % 40, i % 37, i % 40 + 8, i % 37 + 8))
    img.save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode(), red


def _db(data: Path) -> sqlite3.Connection:
    return sqlite3.connect(data / "visionloop.db")


def _consistent(data: Path) -> None:
    with _db(data) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []


class Acked:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.feedback: list[str] = []

    def total(self) -> int:
        return len(self.inputs) + len(self.outputs) + len(self.feedback)


def _writer(url: str, auth: dict[str, str], t: int, acked: Acked, stop: threading.Event) -> None:
    """Cycle through an input add, a predict and a feedback on that prediction, until the server dies."""
    with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
        i = 0
        while not stop.is_set():
            i += 1
            b64, red = _image(t * 10_000 + i)
            try:
                r = http.post("/v2/inputs", json={"inputs": [{"id": f"w{t}-{i}", "data": {
                    "image": {"base64": b64}, "concepts": [{"id": "red", "value": red}]}}]})
                if r.status_code == 200:
                    with acked.lock:
                        acked.inputs.append(f"w{t}-{i}")
                r = http.post(f"/v2/models/{GENERAL}/outputs", json={"inputs": [{"data": {"image": {"base64": b64}}}]})
                if r.status_code != 200:
                    continue
                output_id = r.json()["outputs"][0]["id"]
                with acked.lock:
                    acked.outputs.append(output_id)
                user = f"u{t}-{i}"
                r = http.post(f"/v2/models/{GENERAL}/feedback", json={"input": {
                    "data": {"concepts": [{"id": "red", "value": red}]},
                    "feedback_info": {"event_type": "annotation", "output_id": output_id, "end_user_id": user,
                                      "session_id": "crash-mixed"}}})
                if r.status_code == 200 and r.json()["status"]["code"] == 10000:
                    with acked.lock:
                        acked.feedback.append(user)
            except httpx.HTTPError:
                return  # the server is gone


def _read_all(http: httpx.Client, path: str, field: str, **params: str) -> list[dict]:
    out, page = [], 1
    while True:
        r = http.get(path, params={**params, "page": page, "per_page": 1000})
        assert r.status_code == 200, r.text
        if not r.json()[field]:
            return out
        out += r.json()[field]
        page += 1


@pytest.mark.slow
def test_mixed_writes_survive_sigkill(tmp_path: Path, runtime: ModelRuntime) -> None:
    data, log = tmp_path / "data", tmp_path / "server.log"
    _cli(data, "apps", "create", APP)  # also creates the database, before the server starts
    server = Server(data, log)
    try:
        key = _cli(data, "keys", "create", "--app", APP).splitlines()[-1]
        auth = {"Authorization": f"Key {key}"}
        server.wait_ready(key)
        # the index is opened (and saved, empty) now: every input below makes its snapshot staler
        r = httpx.post(f"{server.url}/v2/searches", headers=auth, timeout=60,
                       json={"query": {"ands": [{"input": {"data": {"concepts": [{"id": "red"}]}}}]}})
        assert r.status_code == 200, r.text

        acked, stop = Acked(), threading.Event()
        threads = [threading.Thread(target=_writer, args=(server.url, auth, t, acked, stop), daemon=True)
                   for t in range(WRITERS)]
        for th in threads:
            th.start()
        deadline = time.monotonic() + 25
        while acked.total() < KILL_AFTER and time.monotonic() < deadline:
            time.sleep(0.05)
        versions = []
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as http:
            for _ in range(3):  # one training job at a time: the later ones wait in the queue
                r = http.post(f"/v2/models/{GENERAL}/versions", json={})
                assert r.status_code == 200, r.text
                versions.append(r.json()["model"]["model_version"]["id"])
        server.kill()  # SIGKILL mid-stream: the writers are still writing, the worker still training
        stop.set()
        for th in threads:
            th.join(timeout=30)
        assert acked.total() >= KILL_AFTER, f"only {acked.total()} writes acknowledged before the deadline"

        # the database a SIGKILL left behind
        _consistent(data)
        with _db(data) as db:
            left = db.execute(f"SELECT id FROM model_versions WHERE status_code IN {UNFINISHED}").fetchall()
        unfinished = {v for (v,) in left} & set(versions)
        assert unfinished, "every training job finished before the kill: nothing left to resume"

        server = Server(data, log)
        server.wait_ready(key)
        with httpx.Client(base_url=server.url, headers=auth, timeout=60) as http:
            stored_inputs = {i["id"] for i in _read_all(http, "/v2/inputs", "inputs")}
            assert set(acked.inputs) <= stored_inputs, sorted(set(acked.inputs) - stored_inputs)[:5]
            events = _read_all(http, "/v2/feedback", "feedback", session_id="crash-mixed")
            stored_users = [e["end_user_id"] for e in events]
            assert set(acked.feedback) <= set(stored_users), sorted(set(acked.feedback) - set(stored_users))[:5]
            assert len(stored_users) == len(set(stored_users))
            with _db(data) as db:
                outputs = {o for (o,) in db.execute("SELECT id FROM outputs")}
            assert set(acked.outputs) <= outputs, sorted(set(acked.outputs) - outputs)[:5]

            # the index, stale on disk, is rebuilt from the database: the newest inputs are found
            for input_id in acked.inputs[-8:]:
                r = http.post("/v2/searches", json={"query": {"ands": [{"output": {"input": {"id": input_id}}}]},
                                                    "pagination": {"page": 1, "per_page": 3}})
                assert r.status_code == 200, r.text
                hits = r.json()["hits"]
                assert hits and hits[0]["input"]["id"] == input_id and hits[0]["score"] > 0.99, (input_id, hits)

            # the restarted worker trains what the kill left queued
            finished: dict[str, int] = {}
            deadline = time.monotonic() + 40
            while len(finished) < len(versions) and time.monotonic() < deadline:
                for v in versions:
                    r = http.get(f"/v2/models/{GENERAL}/versions/{v}")
                    assert r.status_code == 200, r.text
                    code = r.json()["model_version"]["status"]["code"]
                    if code not in UNFINISHED:
                        finished[v] = code
                time.sleep(0.5)
            assert set(finished) == set(versions), f"still unfinished after restart: {set(versions) - set(finished)}"
            assert all(code in (21100, 21117) for code in finished.values()), finished  # trained / too little data
        server.proc.terminate()  # a clean stop saves the index snapshot
        server.proc.wait(timeout=30)
        server.log.close()
        _consistent(data)

        # the saved index holds exactly the stored inputs
        core = VisionLoop(load_settings({"data_dir": data}, environ={}), runtime)
        try:
            with _db(data) as db:
                ids = [i for (i,) in db.execute("SELECT id FROM inputs WHERE app_id = ?", (APP,))]
            index = core.indexes.get(APP).index
            assert len(index) == len(ids) == len(stored_inputs)
            assert all(index.contains(key_for(i)) for i in ids)
        finally:
            core.close()
    finally:
        server.kill()
