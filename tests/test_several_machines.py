"""Two ``visionloop serve`` processes as on two machines: separate data folders (no shared
filesystem), one PostgreSQL with pgvector, one S3 store (SeaweedFS). What one acknowledges the
other finds at once by visual search and predicts on by id, also after the first is SIGKILLed
in the middle of writes; a key's feedback rate limit holds across both."""

from __future__ import annotations

import http.client
import re
import threading
from pathlib import Path
from typing import Any

import pytest

from tests import pgserver
from tests.helpers import b64
from tests.test_pgvector import noise_png
from tests.test_postgres_writers import Server

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]

GENERAL = "aaa03c23b3724a16a56b629203edc62c"


def _add(server: Server, key: str, n: int) -> tuple[int, dict[str, Any]]:
    return server.call(key, "POST", "/inputs", {"inputs": [
        {"id": f"in-{n}", "data": {"image": {"base64": b64(noise_png(n))}}}]})


def _nearest(server: Server, key: str, input_id: str) -> tuple[str, float]:
    status, body = server.call(key, "POST", "/searches", {"query": {"ands": [{"output": {"input": {"id": input_id}}}]}})
    assert status == 200, body
    hit = body["hits"][0]
    return hit["input"]["id"], hit["score"]


def test_two_servers_without_a_shared_folder_see_each_others_inputs(pg_server: pgserver.PgServer, blob_url: str,
                                                                     tmp_path: Path) -> None:
    pgserver.execute_autocommit(pg_server, "CREATE DATABASE machines")  # both prepare pgvector at once
    settings = {"VISIONLOOP_VECTOR_STORE": "pgvector", "VISIONLOOP_BLOB_STORE": "s3", "VISIONLOOP_BLOB_URL": blob_url,
                "VISIONLOOP_FEEDBACK_RATE_LIMIT": "0.5"}  # bursts of 5 feedback requests per key
    first, second = (Server(pg_server.url("machines"), tmp_path / f"data-{n}", tmp_path / f"serve-{n}.log",
                            **settings) for n in range(2))
    try:
        first.wait_ready()
        second.wait_ready()
        key = [k for s in (first, second) for k in re.findall(r"^ {4}([0-9a-f]{32})$", s.log(), re.M)][0]
        assert _add(first, key, 0)[0] == 200
        assert _nearest(second, key, "in-0") == ("in-0", pytest.approx(1.0, abs=1e-5))
        status, body = second.call(key, "POST", f"/models/{GENERAL}/outputs", {"inputs": [{"id": "in-0"}]})
        assert status == 200 and body["outputs"][0]["input"]["id"] == "in-0"
        # one feedback rate limit for both: 5 accepted, alternating between them, then 429 from either
        answers = [server.call(key, "POST", f"/models/{GENERAL}/feedback", {"input": {"id": "in-0", "data": {
            "concepts": [{"id": "cat"}]}, "feedback_info": {"event_type": "annotation", "output_id": "unknown-output",
                                                            "session_id": f"s{n}"}}})[0]
                   for n, server in enumerate([first, second] * 4)]
        assert answers == [200] * 5 + [429] * 3

        acked: list[str] = []
        killed = threading.Event()

        def write() -> None:
            n = 1
            while not killed.is_set():
                try:
                    status, _ = _add(first, key, n)
                except (OSError, http.client.HTTPException):  # e.g. killed between the headers and the body
                    return  # the server is gone: this write was not acknowledged
                if status == 200:
                    acked.append(f"in-{n}")
                n += 1

        writer = threading.Thread(target=write)
        writer.start()
        while len(acked) < 4 and writer.is_alive():
            threading.Event().wait(0.05)
        first.process.kill()  # SIGKILL, in the middle of the writes
        killed.set()
        writer.join(timeout=60)
        first.process.wait(timeout=30)
        assert len(acked) >= 4
        for input_id in acked:
            assert second.call(key, "GET", f"/inputs/{input_id}")[0] == 200
            assert _nearest(second, key, input_id) == (input_id, pytest.approx(1.0, abs=1e-5))
        status, body = second.call(key, "POST", f"/models/{GENERAL}/outputs",
                                   {"inputs": [{"id": i} for i in acked]})
        assert status == 200, body
        assert [o["status"]["code"] for o in body["outputs"]] == [10000] * len(acked)
    finally:
        first.stop()
        second.stop()
