"""Measure the alarms' statistics on real embeddings: false-alarm rate and detection delay.

    nice -n 10 python bench/alarms.py               # a few minutes on 2 cores
    nice -n 10 python bench/alarms.py --windows 300 # fewer i.i.d. windows (quicker, coarser)

Input drift, at the server's default settings (reference 200, window 100, alpha 0.001, 999
permutations): photos (scikit-image scenes, varied crops and colours: tests/alarm_traffic.py) and
the same photos as line drawings or in greyscale, embedded by the product's backbone.

- false alarms: ``--windows`` i.i.d. windows, each a random split of a pool of photos into a
  reference and a window (exchangeable: the test's nominal rate is exact), and "20 windows in a
  row" of a stream of photos sliding by 10 predictions with the reference fixed;
- detection delay: a stream of 200 reference photos and 100 more, then the new kind of image,
  checked every 10 predictions as the server would be between checks; the delay is how many of the
  new images arrived before the first alarm (per trial).

Feedback quality (alpha 0.01, window 50, history 200): the false-alarm rate per window at a
constant negative rate of 20%, and the share of windows that fire when it doubles to 40%.
Writes ``bench/out/alarms.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.alarm_traffic import drawings, photos  # noqa: E402
from visionloop.learning.alarm_checks import proportion_shift  # noqa: E402
from visionloop.learning.drift import mmd_test  # noqa: E402
from visionloop.inference.runtime import ModelRuntime  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "alarms.json"
REFERENCE, WINDOW, ALPHA, STEP = 200, 100, 0.001, 10


def embed(runtime: ModelRuntime, images: list[bytes]) -> np.ndarray:
    out = []
    for start in range(0, len(images), 32):
        batch = [Image.open(io.BytesIO(b)).convert("RGB") for b in images[start:start + 32]]
        out.append(runtime.forward(batch).embeddings)
    return np.concatenate(out)


def greyscale(images: list[bytes]) -> list[bytes]:
    out = []
    for data in images:
        buf = io.BytesIO()
        ImageOps.grayscale(Image.open(io.BytesIO(data))).convert("RGB").save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def delay(reference: np.ndarray, before: np.ndarray, after: np.ndarray, seed: int) -> int | None:
    """New images sent before the first alarm, checking every STEP predictions; None: never (within ``after``)."""
    stream = np.concatenate([before, after])
    for sent in range(STEP, len(after) + STEP, STEP):
        end = len(before) + min(sent, len(after))
        if mmd_test(reference, stream[end - WINDOW:end], alpha=ALPHA, seed=seed + sent).outside:
            return min(sent, len(after))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=1000, help="i.i.d. windows for the drift false-alarm rate")
    parser.add_argument("--trials", type=int, default=5, help="switches measured per kind of new image")
    args = parser.parse_args()
    started = time.time()
    runtime = ModelRuntime()
    pool = embed(runtime, photos(REFERENCE + WINDOW + 500, seed=11))
    new_kinds = {"drawings": embed(runtime, drawings(400, seed=12)),
                 "greyscale": embed(runtime, greyscale(photos(400, seed=13)))}
    rng = np.random.default_rng(0)

    check_times, fired = [], 0
    for i in range(args.windows):
        order = rng.permutation(len(pool))
        t = time.perf_counter()
        fired += mmd_test(pool[order[:REFERENCE]], pool[order[REFERENCE:REFERENCE + WINDOW]], alpha=ALPHA,
                          seed=i).outside
        check_times.append(time.perf_counter() - t)
    streams_fired = 0
    for trial in range(args.trials):  # 20 windows in a row sliding over a photo stream, the reference fixed
        order = rng.permutation(len(pool))
        reference, stream = pool[order[:REFERENCE]], pool[order[REFERENCE:]]
        streams_fired += any(mmd_test(reference, stream[k * STEP:k * STEP + WINDOW], alpha=ALPHA, seed=k).outside
                             for k in range(20))

    delays: dict[str, list[int | None]] = {}
    for name, new in new_kinds.items():
        delays[name] = []
        for trial in range(args.trials):
            order = rng.permutation(len(pool))
            after = new[rng.permutation(len(new))[:200]]
            delays[name].append(delay(pool[order[:REFERENCE]], pool[order[REFERENCE:REFERENCE + WINDOW]], after,
                                      seed=trial))

    frng = np.random.default_rng(1)
    quiet = [proportion_shift(int(frng.binomial(50, 0.2)), 50, int(frng.binomial(200, 0.2)), 200, rise=True,
                              alpha=0.01, min_events=20).outside for _ in range(4000)]  # type: ignore[union-attr]
    doubled = [proportion_shift(int(frng.binomial(50, 0.4)), 50, int(frng.binomial(200, 0.2)), 200, rise=True,
                                alpha=0.01, min_events=20).outside for _ in range(2000)]  # type: ignore[union-attr]
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": f"{os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}", "load_average": os.getloadavg(),
        "drift": {"reference": REFERENCE, "window": WINDOW, "alpha": ALPHA, "permutations": 999,
                  "iid_windows": args.windows, "iid_fired": fired, "false_alarm_rate": fired / args.windows,
                  "streams_of_20_windows": args.trials, "streams_with_an_alarm": streams_fired,
                  "check_seconds_p50": float(np.median(check_times)),
                  "check_seconds_p99": float(np.percentile(check_times, 99)),
                  "delay_new_images_before_alarm": delays, "checked_every": STEP},
        "feedback_quality": {"window": 50, "history": 200, "alpha": 0.01, "rate": 0.2,
                             "false_alarm_rate": float(np.mean(quiet)), "doubled_rate": 0.4,
                             "windows_firing_when_doubled": float(np.mean(doubled))},
        "seconds": round(time.time() - started, 1),
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
