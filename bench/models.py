"""Benchmark the bundled models: latency of Backbone.forward (batch 1 and 32) and face detection.

    python bench/models.py                  # default thread count (all cores)
    python bench/models.py --threads 1 --repeats 50

Images are real photos from scikit-image (a test dependency), cycled to fill a batch. Each case
is warmed up, then timed per call with time.perf_counter; prints p50/p95 in milliseconds and,
for batches, the per-image cost. Preprocessing (decode-free resize and crop) is included, as a
request pays for it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from visionloop.inference.backbone import Backbone  # noqa: E402
from visionloop.inference.faces import FaceDetector  # noqa: E402


def photos() -> list[Image.Image]:
    from skimage import data

    return [Image.fromarray(getattr(data, name)()) for name in ("astronaut", "chelsea", "coffee", "rocket")]


def timed(call: Callable[[], object], repeats: int, warmup: int = 3) -> tuple[float, float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    cuts = statistics.quantiles(samples, n=20, method="inclusive")
    return statistics.median(samples), cuts[18]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    images = photos()
    start = time.perf_counter()
    backbone = Backbone(threads=args.threads)
    load_backbone = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    faces = FaceDetector()
    load_faces = (time.perf_counter() - start) * 1000

    print(f"cpus={os.cpu_count()} threads={args.threads or os.cpu_count()} repeats={args.repeats}")
    print(f"load: backbone {load_backbone:.0f} ms, face detector {load_faces:.0f} ms")
    print(f"{'case':<28}{'p50 ms':>10}{'p95 ms':>10}{'p50 ms/img':>12}")
    for batch in (1, 32):
        chunk = [images[i % len(images)] for i in range(batch)]
        repeats = args.repeats if batch == 1 else max(5, args.repeats // 4)
        p50, p95 = timed(lambda chunk=chunk: backbone.forward(chunk), repeats)
        print(f"{f'Backbone.forward batch={batch}':<28}{p50:>10.1f}{p95:>10.1f}{p50 / batch:>12.1f}")
    for name, image in (("astronaut 512x512", images[0]), ("coffee 600x400", images[2])):
        p50, p95 = timed(lambda image=image: faces.detect(image), args.repeats * 3)
        print(f"{f'FaceDetector.detect {name}':<28}{p50:>10.1f}{p95:>10.1f}{p50:>12.1f}")


if __name__ == "__main__":
    main()
