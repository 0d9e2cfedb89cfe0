"""Shared pieces of the benchmarks: a real server subprocess, timing and percentiles."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import io
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")  # scikit-image's real photos


def photo(name: str) -> Image.Image:
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(*args: str, data_dir: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "visionloop", *args, "--data-dir", str(data_dir)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return out.stdout.strip()


@contextlib.contextmanager
def server(extra_env: dict[str, str] | None = None, data_dir: Path | None = None) -> Iterator[tuple[str, str]]:
    """Start ``visionloop serve`` on a free loopback port; yield (base_url, api_key)."""
    with tempfile.TemporaryDirectory() as tmp:
        data = data_dir or Path(tmp) / "data"
        cli("apps", "create", "bench", data_dir=data)
        key = cli("keys", "create", "--app", "bench", data_dir=data)
        port = free_port()
        env = {**os.environ, **(extra_env or {})}
        proc = subprocess.Popen([sys.executable, "-m", "visionloop", "serve", "--port", str(port),
                                 "--data-dir", str(data), "--log-level", "warning"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    if httpx.get(base + "/v2/models", headers={"Authorization": f"Key {key}"}).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            else:
                raise RuntimeError("server did not start")
            yield base, key
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def timed(fn: Callable[[], object], repeats: int, warmup: int = 3) -> list[float]:
    """Seconds per call of ``fn`` after a warm-up."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def paired(first: Callable[[], object], second: Callable[[], object], repeats: int,
           warmup: int = 3) -> tuple[list[float], list[float]]:
    """Seconds per call of two functions called alternately, so that whatever else loads the
    machine meanwhile weighs on both alike (a ratio of two separate runs mostly measures the load)."""
    a, b = alternated((first, second), repeats, warmup)
    return a, b


def alternated(fns: tuple[Callable[[], object], ...], repeats: int, warmup: int = 3) -> list[list[float]]:
    """Seconds per call of each function, the functions called in turn (see :func:`paired`)."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return samples


def pct(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[int(q) - 1] if len(samples) > 1 else samples[0]


def bare_vs_http(bare: list[float], http: list[float]) -> dict[str, float]:
    """p50/p95 in ms of the bare model call and of the HTTP request, and their p50 ratio."""
    row = {"bare_p50_ms": pct(bare, 50) * 1e3, "bare_p95_ms": pct(bare, 95) * 1e3,
           "http_p50_ms": pct(http, 50) * 1e3, "http_p95_ms": pct(http, 95) * 1e3}
    row["ratio_p50"] = row["http_p50_ms"] / row["bare_p50_ms"]
    return row


RESULTS = ROOT / "docs" / "benchmarks.md"


def machine() -> str:
    """What a figure was measured on: CPU model and count, and how loaded the machine was."""
    model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        model = found.group(1).strip() if found else model
    return f"{os.cpu_count()} x {model}, load {os.getloadavg()[0]:.1f}"


def publish(script: str, figures: str, results: Path = RESULTS) -> None:
    """Record a run's headline figures in docs/benchmarks.md, under "Latest runs", with the date and
    machine; the run before of the same script is replaced (the page keeps one line per script)."""
    start, end = "<!-- latest runs: written by the bench scripts -->", "<!-- end of latest runs -->"
    text = results.read_text()
    if start not in text:
        text = text.rstrip("\n") + f"\n\n## Latest runs\n\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    lines, tail = rest.split(end, 1)
    kept = [line for line in lines.strip("\n").splitlines() if line and not line.startswith(f"- `{script}`")]
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    kept.append(f"- `{script}` ({today}; {machine()}): {figures}")
    results.write_text(f"{head}{start}\n" + "\n".join(sorted(kept)) + f"\n{end}{tail}")
