"""Bombs and oversize bodies, against a real ``visionloop serve``: decompression bombs (PNG, JPEG
headers claiming 100+ megapixels), over-limit images and bodies (declared or streamed) and a
gzip-encoded body are refused while the server's peak RSS (VmHWM, reset before each request)
grows by a bounded amount; the server's debug and access logs never show the key."""

from __future__ import annotations

import base64
import functools
import gzip
import io
import os
import re
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.helpers import b64, clean_env, free_port, png_bytes
from tests.security.support import GENERAL, PNG, REPO, run_cli

MAX_BODY = 2_000_000
MAX_IMAGE = 1_000_000
GROWTH_LIMIT = 40 * 2**20  # decoding any of the bombs would take 100+ MiB




class RealServer:
    def __init__(self, tmp: Path) -> None:
        self.data, self.log_path = tmp / "data", tmp / "server.log"
        for args in (("apps", "create", "sec"),):
            done = run_cli(self.data, *args)
            assert done.returncode == 0, done.stderr
        made = run_cli(self.data, "keys", "create", "--app", "sec")
        assert made.returncode == 0, made.stderr
        self.key = made.stdout.strip().splitlines()[-1]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = clean_env(VISIONLOOP_MAX_BODY_BYTES=str(MAX_BODY), VISIONLOOP_MAX_IMAGE_BYTES=str(MAX_IMAGE),
                        VISIONLOOP_FEEDBACK_RATE_LIMIT="0")
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "visionloop", "serve", "--port", str(self.port),
                                      "--data-dir", str(self.data), "--log-level", "debug", "--access-log"],
                                     cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()[-2000:]
            try:
                if httpx.get(self.url + "/v2/models", headers=self.auth, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise AssertionError("the server did not start")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.key}"}

    def _status(self) -> dict[str, int]:
        text_ = Path(f"/proc/{self.proc.pid}/status").read_text()
        return {k: int(v.split()[0]) * 1024 for k, v in re.findall(r"^(VmHWM|VmRSS):\s+(.*)$", text_, re.M)}

    def peak_growth(self, action: Any) -> tuple[Any, int]:
        """Run ``action``; return its result and how far the server's peak RSS rose above its RSS before."""
        Path(f"/proc/{self.proc.pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS
        before = self._status()["VmRSS"]
        result = action()
        time.sleep(0.2)
        return result, self._status()["VmHWM"] - before

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def real_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealServer]:
    server = RealServer(tmp_path_factory.mktemp("security"))
    yield server
    server.stop()


@functools.cache
def png_bomb(width: int, height: int) -> bytes:
    """A valid greyscale PNG of ``width`` x ``height`` zeros: a few hundred KiB claiming ``width*height`` bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header claims ``width`` x ``height``."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 10)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _post(server: RealServer, path: str, body: Any, **kw: Any) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers=server.auth, timeout=60, **kw)


@pytest.mark.slow
def test_the_memory_probe_sees_a_real_decode(real_server: RealServer) -> None:
    """Control: a legitimate 2400x2400 image (17 MB decoded, a few KiB sent) does move the peak."""
    small = {"inputs": [{"data": {"image": {"base64": PNG}}}]}
    for path in ("/v2/inputs", f"/v2/models/{GENERAL}/outputs"):  # the models are loaded: not measured below
        assert _post(real_server, path, small).status_code == 200
    big = b64(png_bytes((90, 90, 90), (2400, 2400)))
    r, growth = real_server.peak_growth(lambda: _post(real_server, f"/v2/models/{GENERAL}/outputs",
                                                      {"inputs": [{"data": {"image": {"base64": big}}}]}))
    assert r.status_code == 200, r.text
    assert growth > 10 * 2**20, growth


@pytest.mark.slow
@pytest.mark.parametrize("name", ["png-144MP", "jpeg-900MP", "png-over-image-bytes"])
@pytest.mark.parametrize("route", ["inputs", "predict"])
def test_bombs_are_refused_before_decoding(real_server: RealServer, name: str, route: str) -> None:
    data = {"png-144MP": lambda: png_bomb(12_000, 12_000), "jpeg-900MP": lambda: jpeg_claiming(30_000, 30_000),
            "png-over-image-bytes": lambda: os.urandom(MAX_IMAGE + 1000)}[name]()
    assert len(base64.b64encode(data)) < MAX_BODY
    body = {"inputs": [{"data": {"image": {"base64": b64(data)}}}]}
    path = "/v2/inputs" if route == "inputs" else f"/v2/models/{GENERAL}/outputs"
    r, growth = real_server.peak_growth(lambda: _post(real_server, path, body))
    assert r.status_code == 400, r.text
    assert r.json()["status"]["code"] == 30105, r.text  # INPUT_OVER_LIMIT
    assert growth < GROWTH_LIMIT, f"peak RSS rose {growth / 2**20:.0f} MiB"


@pytest.mark.slow
def test_oversize_bodies_are_cut_off(real_server: RealServer) -> None:
    # declared: refused from the headers alone, before a byte of body is read
    with socket.create_connection(("127.0.0.1", real_server.port), timeout=30) as s:
        s.sendall(b"POST /v2/inputs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Authorization: Key " + real_server.key.encode() + b"\r\nContent-Length: 500000000\r\n\r\n")
        head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]

    # streamed (chunked, no length): 60 MB offered, the server answers 413 once it passes the limit
    def stream() -> Iterator[bytes]:
        yield b'{"inputs": ['
        for _ in range(600):
            yield b" " * 100_000

    def send() -> int:
        try:
            return httpx.post(real_server.url + "/v2/inputs", content=stream(), headers=real_server.auth,
                              timeout=60).status_code
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):  # closed while we still wrote:
            return 413                                                            # also a refusal

    code, growth = real_server.peak_growth(send)
    assert code == 413
    assert real_server.proc.poll() is None  # refused, not crashed
    assert growth < GROWTH_LIMIT, f"peak RSS rose {growth / 2**20:.0f} MiB"


@pytest.mark.slow
def test_a_gzip_body_is_not_inflated(real_server: RealServer) -> None:
    """A 100 MB body gzipped to ~100 KB: the server does not decompress request bodies at all."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as gz:
        gz.write(b'{"inputs": [')
        for _ in range(100):
            gz.write(b" " * 1_000_000)
        gz.write(b"]}")
    bomb = buf.getvalue()

    def send() -> httpx.Response:
        return httpx.post(real_server.url + "/v2/inputs", content=bomb, timeout=60,
                          headers={**real_server.auth, "Content-Encoding": "gzip",
                                   "Content-Type": "application/json"})

    r, growth = real_server.peak_growth(send)
    assert r.status_code == 400 and r.json()["status"]["code"] in (11100, 11102), r.text
    assert growth < GROWTH_LIMIT, f"peak RSS rose {growth / 2**20:.0f} MiB"


@pytest.mark.slow
def test_the_server_logs_never_show_the_key(real_server: RealServer) -> None:
    """Debug logging and the access log on, requests good and bad with the key: it is never written."""
    for method, path, body in [("GET", "/v2/inputs", None), ("POST", "/v2/inputs", {"inputs": [{"id": "x"}]}),
                               ("GET", f"/v2/models/{GENERAL}", None), ("GET", "/v2/nowhere", None),
                               ("POST", "/v2/searches", {"query": {"ands": [{"output": {"input": {"id": "x"}}}]}})]:
        httpx.request(method, real_server.url + path, json=body, headers=real_server.auth, timeout=60)
    httpx.get(real_server.url + "/v2/inputs", headers={"Authorization": f"Key {real_server.key}-wrong"}, timeout=30)
    time.sleep(0.5)
    log = real_server.log_path.read_text(errors="replace")
    assert "/v2/inputs" in log  # the access log is on: we are looking at the right place
    assert real_server.key not in log
    listing = run_cli(real_server.data, "keys", "list")
    assert listing.returncode == 0 and "sec" in listing.stdout
    assert real_server.key not in listing.stdout + listing.stderr
