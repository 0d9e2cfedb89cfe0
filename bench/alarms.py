"""Measure the alarms' statistics on real embeddings: false-alarm rate and detection delay.

    nice -n 10 python bench/alarms.py               # a few minutes on 2 cores
    nice -n 10 python bench/alarms.py --windows 300 # fewer i.i.d. windows (quicker, coarser)
    nice -n 10 python bench/alarms.py --only feedback --streams 600  # feedback quality only (~10 min loaded)

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
constant negative rate of 20%, and the share of windows that fire when it doubles to 40%. Then the
same 20% → 40% simulation checked after every verdict, as a server whose checks outpace feedback
does: the share of streams with an alarm within 50 verdicts with and without the change, for the
server's sliding window and for a sequential alternative (a window-limited Bernoulli CUSUM for
the doubled rate, its threshold set by simulation for a false-alarm rate per 50 verdicts).
Last, the one-window test at other negative rates (5% to 40%, doubled) and history lengths, beside
the best any test can do on those 50 verdicts: a binomial test that knows the history's rate.
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
from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.alarm_traffic import drawings, photos  # noqa: E402
from visionloop.inference.runtime import ModelRuntime  # noqa: E402
from visionloop.learning.alarm_checks import proportion_shift  # noqa: E402
from visionloop.learning.drift import mmd_test  # noqa: E402

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


def drift(windows: int, trials: int) -> dict[str, object]:
    """Input drift on real embeddings: false alarms over i.i.d. windows and delays after a switch."""
    runtime = ModelRuntime()
    pool = embed(runtime, photos(REFERENCE + WINDOW + 500, seed=11))
    new_kinds = {"drawings": embed(runtime, drawings(400, seed=12)),
                 "greyscale": embed(runtime, greyscale(photos(400, seed=13)))}
    rng = np.random.default_rng(0)

    check_times, fired = [], 0
    for i in range(windows):
        order = rng.permutation(len(pool))
        t = time.perf_counter()
        fired += mmd_test(pool[order[:REFERENCE]], pool[order[REFERENCE:REFERENCE + WINDOW]], alpha=ALPHA,
                          seed=i).outside
        check_times.append(time.perf_counter() - t)
    streams_fired = 0
    for _ in range(trials):  # 20 windows in a row sliding over a photo stream, the reference fixed
        order = rng.permutation(len(pool))
        reference, stream = pool[order[:REFERENCE]], pool[order[REFERENCE:]]
        streams_fired += any(mmd_test(reference, stream[k * STEP:k * STEP + WINDOW], alpha=ALPHA, seed=k).outside
                             for k in range(20))

    delays: dict[str, list[int | None]] = {}
    for name, new in new_kinds.items():
        delays[name] = []
        for trial in range(trials):
            order = rng.permutation(len(pool))
            after = new[rng.permutation(len(new))[:200]]
            delays[name].append(delay(pool[order[:REFERENCE]], pool[order[REFERENCE:REFERENCE + WINDOW]], after,
                                      seed=trial))

    return {"reference": REFERENCE, "window": WINDOW, "alpha": ALPHA, "permutations": 999,
            "iid_windows": windows, "iid_fired": fired, "false_alarm_rate": fired / windows,
            "streams_of_20_windows": trials, "streams_with_an_alarm": streams_fired,
            "check_seconds_p50": float(np.median(check_times)),
            "check_seconds_p99": float(np.percentile(check_times, 99)),
            "delay_new_images_before_alarm": delays, "checked_every": STEP}


def window_fires(stream: np.ndarray, history: int, window: int, alpha: float) -> bool:
    """The server's feedback quality check after each verdict past ``history``: the latest
    ``window`` verdicts against all before them."""
    for t in range(history + 1, len(stream) + 1):
        recent, past = stream[t - window:t], stream[:t - window]
        check = proportion_shift(int(recent.sum()), window, int(past.sum()), len(past), rise=True, alpha=alpha,
                                 min_events=20)
        if check is not None and check.outside:
            return True
    return False


def cusum_fires(stream: np.ndarray, history: int, window: int, alpha: float, seed: int) -> bool:
    """A window-limited Bernoulli CUSUM after each verdict past ``history``: the largest log-likelihood
    ratio of the rate ``p1`` (doubled, at most halfway to 1) against the history's ``p0`` over any
    suffix of the latest ``window`` verdicts. The threshold is the ``1 - alpha`` quantile of the
    statistic's maximum over ``window`` checks of streams drawn at rates from the history's Jeffreys
    posterior, so ``alpha`` is the false-alarm rate per ``window`` verdicts, the history's
    uncertainty included."""
    past = stream[:history]
    hits, n = int(past.sum()), history
    p0 = (hits + 0.5) / (n + 1)
    p1 = min(2 * p0, (1 + p0) / 2)
    up, down = np.log(p1 / p0), np.log((1 - p1) / (1 - p0))

    def statistic(x: np.ndarray) -> np.ndarray:  # rows of 2*window-1 verdicts -> the last ``window`` checks
        c = np.concatenate([np.zeros((len(x), 1)), np.cumsum(np.where(x, up, down), axis=1)], axis=1)
        return c[:, window:] - np.lib.stride_tricks.sliding_window_view(c, window + 1, axis=1).min(axis=2)

    rng = np.random.default_rng(seed)
    rates = rng.beta(hits + 0.5, n - hits + 0.5, size=2000)
    null = statistic(rng.random((len(rates), 2 * window - 1)) < rates[:, None]).max(axis=1)
    threshold = float(np.quantile(null, 1 - alpha))
    return bool((statistic(stream[None, history - window + 1:]) > threshold).any())


def sequential(trials: int) -> dict[str, object]:
    """Streams of 200 verdicts at 20% negative, then 50 at 20% (quiet) or 40% (doubled), checked
    after each of the 50: the share with an alarm, for the sliding window and the CUSUM."""
    history, window, rng = 200, 50, np.random.default_rng(2)
    streams = {rate: [np.concatenate([rng.random(history) < 0.2, rng.random(window) < rate]) for _ in range(trials)]
               for rate in (0.2, 0.4)}
    out: dict[str, object] = {"history": history, "window": window, "streams": trials}
    for alpha in (0.01, 0.003):
        out[f"window_alpha_{alpha}"] = {f"fired_at_{rate}": float(np.mean([window_fires(x, history, window, alpha)
                                                                           for x in xs]))
                                        for rate, xs in streams.items()}
    for alpha in (0.01, 0.03):
        out[f"cusum_alpha_{alpha}"] = {f"fired_at_{rate}": float(np.mean([cusum_fires(x, history, window, alpha, i)
                                                                          for i, x in enumerate(xs)]))
                                       for rate, xs in streams.items()}
    return out


def base_rates(windows: int) -> list[dict[str, float]]:
    """The one-window test (window 50, alpha 0.01) when a negative rate ``p`` doubles, for several
    ``p`` and history lengths, with the power of the binomial test that knows ``p`` exactly: what no
    test on 50 verdicts can beat at that false-alarm rate."""
    rng, window, alpha, rows = np.random.default_rng(3), 50, 0.01, []
    for p in (0.05, 0.1, 0.2, 0.3, 0.4):
        critical = int(np.argmax(binom.sf(np.arange(window + 1) - 1, window, p) <= alpha))
        for history in (200, 1000):
            def fired(rate: float) -> float:
                return float(np.mean([proportion_shift(int(rng.binomial(window, rate)), window,
                                                       int(rng.binomial(history, p)), history, rise=True,
                                                       alpha=alpha, min_events=20).outside  # type: ignore[union-attr]
                                      for _ in range(windows)]))
            rows.append({"rate": p, "history": history, "false_alarm_rate": fired(p),
                         "fired_when_doubled": fired(2 * p),
                         "known_rate_test_fires": float(binom.sf(critical - 1, window, 2 * p)),
                         "known_rate_test_false_alarms": float(binom.sf(critical - 1, window, p))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=1000, help="i.i.d. windows for the drift false-alarm rate")
    parser.add_argument("--trials", type=int, default=5, help="switches measured per kind of new image")
    parser.add_argument("--streams", type=int, default=1000, help="verdict streams per rate for the per-verdict checks")
    parser.add_argument("--only", choices=["feedback"], help="measure only the feedback quality tests (no model)")
    args = parser.parse_args()
    started = time.time()
    result: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": f"{os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}", "load_average": os.getloadavg()}
    if args.only is None:
        result["drift"] = drift(args.windows, args.trials)
    frng = np.random.default_rng(1)
    quiet = [proportion_shift(int(frng.binomial(50, 0.2)), 50, int(frng.binomial(200, 0.2)), 200, rise=True,
                              alpha=0.01, min_events=20).outside for _ in range(4000)]  # type: ignore[union-attr]
    doubled = [proportion_shift(int(frng.binomial(50, 0.4)), 50, int(frng.binomial(200, 0.2)), 200, rise=True,
                                alpha=0.01, min_events=20).outside for _ in range(2000)]  # type: ignore[union-attr]
    result["feedback_quality"] = {"window": 50, "history": 200, "alpha": 0.01, "rate": 0.2,
                                  "false_alarm_rate": float(np.mean(quiet)), "doubled_rate": 0.4,
                                  "windows_firing_when_doubled": float(np.mean(doubled)),
                                  "checked_after_every_verdict": sequential(args.streams),
                                  "doubling_by_rate": base_rates(2000)}
    result["seconds"] = round(time.time() - started, 1)
    out = OUT if args.only is None else OUT.with_name(f"alarms_{args.only}.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
