"""Predict through HTTP vs the bare model forward, measured in the same run.

    python bench/predict.py [--repeats 30] [--part latency|concurrency|all] [--seconds 8] [--clients 1,4,16,64]

For the general and face models at batch 1 and 32 (skimage photos, 300-640 px), and for the
general model on one phone-sized 12 MP JPEG (the bare forward gets it already decoded at full
size; the server decodes it at reduced scale, needing only a 256 px side): p50/p95 latency and
images/s of ``POST /v2/models/{id}/outputs`` against a real ``visionloop serve`` process, and of the bare
forward (the same predictor on already-decoded images) in this process, called alternately with
the HTTP request so that both see the same machine load; then their ratio.
The concurrency part (``bench/predict_concurrency.py``): images/s and p50/p99 of 1 to 64 concurrent
clients of batch-1 predicts, with dynamic batching on and off, beside the bare forward at batch 1 and 32.
Writes bench/out/predict.json.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import predict_concurrency  # noqa: E402
from bench.common import PHOTOS, ROOT, b64, bare_vs_http, jpeg, paired, pct, photo, publish, server  # noqa: E402
from visionloop.inference.catalog import FACE, GENERAL  # noqa: E402
from visionloop.inference.predictors import base_predictor  # noqa: E402
from visionloop.inference.runtime import ModelRuntime  # noqa: E402


def photos() -> list[bytes]:
    return [jpeg(photo(name)) for name in PHOTOS]


def phone_photo() -> bytes:
    """A phone-camera-sized JPEG (4032 x 3024, ~12 MP): what real users send."""
    return jpeg(photo("chelsea").resize((4032, 3024), Image.Resampling.BICUBIC))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--part", choices=("latency", "concurrency", "all"), default="all")
    parser.add_argument("--seconds", type=float, default=8.0, help="per number of clients and batching mode")
    parser.add_argument("--clients", default="1,4,16,64", help="comma-separated numbers of concurrent clients")
    args = parser.parse_args()
    images = photos()
    results: dict[str, object] = {}
    headlines = []
    if args.part in ("latency", "all"):
        rows = latency(images, args.repeats)
        results["latency"] = rows
        headlines.append("HTTP p50 / bare forward p50: " + "; ".join(
            f"{r['model']} {r['images']} batch {r['batch']} {r['http_p50_ms']:.1f} / {r['bare_p50_ms']:.1f} ms "
            f"({r['ratio_p50']:.2f}x)" for r in rows))
    if args.part in ("concurrency", "all"):
        levels = tuple(int(n) for n in args.clients.split(","))
        concurrency = predict_concurrency.run(images, levels, args.seconds, args.repeats)
        results["concurrency"] = concurrency
        headlines.append(concurrency_headline(concurrency))
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "predict.json").write_text(json.dumps(results, indent=1))
    publish("bench/predict.py", " | ".join(headlines))


def concurrency_headline(result: dict) -> str:
    bare = result["bare_img_s"]
    levels = "; ".join(f"{r['clients']} clients batching {r['batching']} {r['img_s']:.0f} img/s p50 {r['p50_ms']:.0f} "
                       f"p99 {r['p99_ms']:.0f} ms CPU {r['cpu_ms_per_img']:.1f} ms/img" for r in result["levels"])
    return (f"bare forward batch 1 {bare[1]:.0f} img/s, batch 32 {bare[32]:.0f} img/s; {levels}; "
            f"targets {result['verdict']}")


def latency(images: list[bytes], repeats_1: int) -> list[dict]:
    """HTTP against the bare forward, one request at a time, for each model, image size and batch."""
    cases = [(GENERAL, "photos", images, batch) for batch in (1, 32)]
    cases += [(FACE, "photos", images, batch) for batch in (1, 32)]
    cases += [(GENERAL, "12 MP", [phone_photo()], 1)]
    runtime = ModelRuntime()
    rows = []
    with server() as (base, key), httpx.Client(base_url=base, headers={"Authorization": f"Key {key}"},
                                               timeout=120) as client:
        for spec, label, pool, batch in cases:
            predictor = base_predictor(runtime, spec.runtime)
            chosen = [pool[i % len(pool)] for i in range(batch)]
            pils = [Image.open(io.BytesIO(b)).convert("RGB") for b in chosen]
            body = {"inputs": [{"data": {"image": {"base64": b64(b)}}} for b in chosen]}
            repeats = repeats_1 if batch == 1 else max(5, repeats_1 // 4)

            def http_call() -> None:
                r = client.post(f"/v2/models/{spec.id}/outputs", json=body)
                r.raise_for_status()

            bare, http = paired(lambda: predictor.predict(pils), http_call, repeats)
            row = {"model": spec.name, "images": label, "batch": batch, **bare_vs_http(bare, http),
                   "bare_img_s": batch / pct(bare, 50), "http_img_s": batch / pct(http, 50)}
            rows.append(row)
            print(f"{spec.name:>12} {label:>6} batch {batch:>2}: bare p50 {row['bare_p50_ms']:7.1f} ms p95 "
                  f"{row['bare_p95_ms']:7.1f} | http p50 {row['http_p50_ms']:7.1f} ms p95 "
                  f"{row['http_p95_ms']:7.1f} | {row['http_img_s']:6.1f} img/s | ratio {row['ratio_p50']:.2f}x",
                  flush=True)
    return rows


if __name__ == "__main__":
    main()
