"""Concurrent clients of batch-1 general-model predicts, with dynamic batching on and off, beside the
bare forward at batch 1 and 32: what one machine serves when many clients call at once.

Run by ``bench/predict.py`` (``--part concurrency``). Two ``visionloop serve`` processes run side by
side, one with ``VISIONLOOP_DYNAMIC_BATCH_MAX=1`` (off) and one with the defaults (on); for each
number of clients they are measured in turn, off-on-on-off, each for half the time, so that the rest
of the machine's load (and its drift) weighs on both alike. The clients are asyncio tasks on one
keep-alive connection each (``bench/keepalive.py``), each sending one photo per request, the next as
soon as the answer came.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image

from bench.common import b64, pct, server, timed
from bench.keepalive import Connection
from visionloop.inference.batching import BatchPolicy
from visionloop.inference.catalog import GENERAL
from visionloop.inference.predictors import base_predictor
from visionloop.inference.runtime import ModelRuntime

OFF = {"VISIONLOOP_DYNAMIC_BATCH_MAX": "1"}
TARGET_SCALING, TARGET_OF_BARE = 1.6, 0.65  # issue 23: 16 clients vs 1 client, vs the bare batch-32 forward


def server_cpu_seconds(base: str) -> float:
    """User + system CPU time so far of the ``visionloop serve`` process listening at ``base``. On a
    machine others load, images per CPU second is the fair comparison: a server with more busy threads
    takes a larger share of the cores from everyone else, which shows as images/s but is not efficiency."""
    port = str(urlsplit(base).port)
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
            if b"serve" in args and b"--port" in args and args[args.index(b"--port") + 1].decode() == port:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    raise RuntimeError(f"no visionloop serve process listens on port {port}")


async def _level(base: str, key: str, bodies: list[dict[str, Any]], clients: int,
                 seconds: float) -> tuple[list[float], float]:
    """Latencies of every request answered in ``seconds`` of ``clients`` busy clients, and the time taken."""
    path = f"/v2/models/{GENERAL.id}/outputs"
    connections = await asyncio.gather(*(Connection.open(base, {"Authorization": f"Key {key}"})
                                         for _ in range(clients)))
    latencies: list[float] = []
    try:
        for conn in connections:  # warm every connection (and the server's threads) once
            await conn.post(path, bodies[0])
        stop = time.perf_counter() + seconds

        async def client(n: int, conn: Connection) -> None:
            i = n
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                code, _ = await conn.post(path, bodies[i % len(bodies)])
                if code != 200:
                    raise RuntimeError(f"predict answered HTTP {code}")
                latencies.append(time.perf_counter() - t0)
                i += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(client(n, c) for n, c in enumerate(connections)))
        elapsed = time.perf_counter() - t0
    finally:
        await asyncio.gather(*(c.close() for c in connections))
    return latencies, elapsed


def bare(images: list[bytes], repeats: int) -> dict[int, dict[str, float]]:
    """Images/s and CPU ms per image of the general predictor at batch 1 and 32, in this process, on
    decoded images. The CPU figure is the one a loaded machine does not distort: if it does not fall
    with the batch, batching cannot raise what the cores serve."""
    predictor = base_predictor(ModelRuntime(batching=BatchPolicy(max_size=1)), GENERAL.runtime)
    pils = [Image.open(io.BytesIO(b)).convert("RGB") for b in images]
    out = {}
    for batch in (1, 32):
        chosen = [pils[i % len(pils)] for i in range(batch)]
        calls = repeats if batch == 1 else max(5, repeats // 4)
        predictor.predict(chosen)  # the network loads on the first call: not part of the CPU per image
        cpu = time.process_time()
        seconds = timed(lambda: predictor.predict(chosen), calls, warmup=0)
        cpu = time.process_time() - cpu
        out[batch] = {"img_s": batch / pct(seconds, 50), "cpu_ms_per_img": cpu / (calls * batch) * 1e3}
    return out


def run(images: list[bytes], levels: tuple[int, ...], seconds: float, repeats: int) -> dict[str, Any]:
    bodies = [{"inputs": [{"data": {"image": {"base64": b64(img)}}}]} for img in images]
    bare_runs = bare(images, repeats)
    bare_img_s = {batch: b["img_s"] for batch, b in bare_runs.items()}
    print("bare general forward: " + ", ".join(f"batch {batch} {b['img_s']:.1f} img/s, CPU {b['cpu_ms_per_img']:.1f} "
                                               "ms/img" for batch, b in bare_runs.items()), flush=True)
    rows: list[dict[str, Any]] = []
    with server(OFF) as (off_base, off_key), server() as (on_base, on_key):
        servers = {"off": (off_base, off_key), "on": (on_base, on_key)}
        for clients in levels:
            samples: dict[str, tuple[list[float], float, float]] = {"off": ([], 0.0, 0.0), "on": ([], 0.0, 0.0)}
            for mode in ("off", "on", "on", "off"):
                cpu = server_cpu_seconds(servers[mode][0])
                latencies, elapsed = asyncio.run(_level(*servers[mode], bodies, clients, seconds / 2))
                cpu = server_cpu_seconds(servers[mode][0]) - cpu
                before = samples[mode]
                samples[mode] = (before[0] + latencies, before[1] + elapsed, before[2] + cpu)
            for mode, (latencies, elapsed, cpu) in samples.items():
                row = {"clients": clients, "batching": mode, "img_s": len(latencies) / elapsed,
                       "p50_ms": pct(latencies, 50) * 1e3, "p99_ms": pct(latencies, 99) * 1e3,
                       "cpu_ms_per_img": cpu / len(latencies) * 1e3, "server_cores": cpu / elapsed,
                       "requests": len(latencies)}
                rows.append(row)
                print(f"{clients:>3} clients, batching {mode:>3}: {row['img_s']:6.1f} img/s, "
                      f"p50 {row['p50_ms']:7.1f} ms, p99 {row['p99_ms']:7.1f} ms, "
                      f"server CPU {row['cpu_ms_per_img']:5.1f} ms/img on {row['server_cores']:.2f} cores "
                      f"({row['requests']} requests)", flush=True)
    result = {"bare_img_s": bare_img_s, "bare_cpu_ms_per_img": {b: r["cpu_ms_per_img"] for b, r in bare_runs.items()},
              "levels": rows, "verdict": verdict(rows, bare_img_s)}
    print(f"targets: {result['verdict']}", flush=True)
    return result


def verdict(rows: list[dict[str, Any]], bare_img_s: dict[int, float]) -> dict[str, Any]:
    """The issue's targets, each with the measured figures and met or not."""
    at = {(r["clients"], r["batching"]): r for r in rows}
    if (16, "on") not in at or (1, "on") not in at:
        return {}
    on16, on1, off16, off1 = at[16, "on"], at[1, "on"], at[16, "off"], at[1, "off"]
    scaling, of_bare = on16["img_s"] / on1["img_s"], on16["img_s"] / bare_img_s[32]
    return {
        "scaling_16_vs_1": round(scaling, 2), "scaling_met": scaling >= TARGET_SCALING,
        "of_bare_batch32": round(of_bare, 2), "of_bare_met": of_bare >= TARGET_OF_BARE,
        "p99_16_on_off_ms": [round(on16["p99_ms"], 1), round(off16["p99_ms"], 1)],
        "p99_met": on16["p99_ms"] < off16["p99_ms"],
        "p50_1_on_off_ms": [round(on1["p50_ms"], 1), round(off1["p50_ms"], 1)],
        # What 16 clients could reach against 1 if the server had every core to itself, at the CPU per
        # image measured: the bound the cores set, whatever batching does. Compare the cores it got.
        "scaling_16_vs_1_if_every_core": round((os.cpu_count() or 1) * 1e3 / on16["cpu_ms_per_img"] / on1["img_s"], 2),
        "server_cores_1_16": [round(on1["server_cores"], 2), round(on16["server_cores"], 2)],
        "lone_not_worse": on1["p50_ms"] <= off1["p50_ms"] * 1.05,  # within the noise of a loaded machine
    }
