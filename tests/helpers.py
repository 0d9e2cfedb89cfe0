"""Helpers for tests that talk to the API the way clients do."""

from __future__ import annotations

import base64
import functools
import io
import os
import socket
import subprocess
import sys
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image


def png_bytes(color: tuple[int, int, int] = (255, 0, 0), size: tuple[int, int] = (16, 16)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(**settings: str) -> dict[str, str]:
    """The environment for a server or CLI subprocess: none of the caller's VISIONLOOP_* settings
    (a database URL or data dir could leak in), unbuffered output, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VISIONLOOP_")}
    return {**env, "PYTHONUNBUFFERED": "1", **settings}


class Api:
    """A test client bound to one API key; paths are relative to /v2."""

    def __init__(self, client: TestClient, key: str, app_id: str) -> None:
        self.client = client
        self.key = key
        self.app_id = app_id

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Key {self.key}"}

    def request(self, method: str, path: str, json: Any = None, **kw: Any):  # type: ignore[no-untyped-def]
        return self.client.request(method, "/v2" + path, json=json, headers=self.headers(), **kw)

    def get(self, path: str, **kw: Any):  # type: ignore[no-untyped-def]
        return self.request("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any):  # type: ignore[no-untyped-def]
        return self.request("POST", path, json, **kw)

    def patch(self, path: str, json: Any = None, **kw: Any):  # type: ignore[no-untyped-def]
        return self.request("PATCH", path, json, **kw)

    def delete(self, path: str, json: Any = None, **kw: Any):  # type: ignore[no-untyped-def]
        return self.request("DELETE", path, json, **kw)

    def add_image(self, input_id: str, color: tuple[int, int, int] = (255, 0, 0), **data: Any) -> dict:
        r = self.post("/inputs", {"inputs": [{"id": input_id, "data": {"image": {"base64": b64(png_bytes(color))},
                                                                        **data}}]})
        assert r.status_code == 200, r.text
        return r.json()["inputs"][0]


class ImageServer:
    """A loopback HTTP server handing out registered bytes (no internet in tests)."""

    def __init__(self) -> None:
        import http.server
        import threading

        files: dict[str, tuple[int, bytes]] = {}
        self.files = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
                code, data = files.get(self.path, (404, b"not found"))
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, data: bytes, code: int = 200) -> str:
        self.files[path] = (code, data)
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@functools.cache
def scene(name: str) -> Image.Image:
    """A real photo from scikit-image's bundled data (chelsea, coffee, astronaut, ...), as RGB."""
    from skimage import data as skdata

    pixels = np.asarray(getattr(skdata, name)())
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return Image.fromarray(pixels[..., :3].astype(np.uint8))


def photo(name: str, fmt: str = "JPEG") -> bytes:
    """:func:`scene` as an encoded image."""
    buf = io.BytesIO()
    scene(name).save(buf, fmt, quality=92)
    return buf.getvalue()


def train(api: Api, model: str, **options: object) -> dict:
    """Ask for a new version of ``model`` now (``visionloop`` options in the body); the version."""
    r = api.post(f"/models/{model}/versions", {"visionloop": options} if options else {})
    assert r.status_code == 200, r.text
    return r.json()["model"]["model_version"]


def scene_variants(base: Image.Image, n: int, seed: int, *, quality: int) -> list[bytes]:
    """Different JPEG photos of one scene, as varied uploads look: crops, flips, colour and size."""
    import random

    from PIL import ImageEnhance, ImageOps

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        w, h = base.size
        cw, ch = int(w * rng.uniform(0.6, 0.95)), int(h * rng.uniform(0.6, 0.95))
        x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
        img = base.crop((x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            img = ImageOps.mirror(img)
        img = ImageEnhance.Color(img).enhance(rng.uniform(0.6, 1.4)).resize((rng.randint(150, 300),) * 2)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        out.append(buf.getvalue())
    return out



def run_cli(core: Any, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``visionloop ARGS`` as an operator runs it, on the data dir and database of a test's VisionLoop."""
    cmd = [sys.executable, "-m", "visionloop", *args, "--data-dir", str(core.settings.data_dir)]
    if core.settings.database_url:
        cmd += ["--database-url", core.settings.database_url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})
