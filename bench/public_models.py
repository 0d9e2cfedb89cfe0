"""Predict time of Clarifai's public models served offline, against the bare forward.

    python bench/public_models.py [--repeats 20]

For NSFW, color, focus and the food and apparel views (and the general model as the reference),
at batch 1 on scikit-image's photos (300-640 px, taken in turn): p50/p95 of the bare predictor
(the same predictor on an already-decoded image, in this process) and of ``POST
/v2/models/{id}/outputs`` against a real ``visionloop serve``, called alternately so that both see
the same machine load, with the general model's bare predictor in the same turn: what each model
adds to it; the HTTP/bare ratio. Writes bench/out/public_models.json.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import sys
from pathlib import Path

import httpx
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import PHOTOS, ROOT, alternated, b64, bare_vs_http, jpeg, pct, photo, server  # noqa: E402
from visionloop.inference.catalog import APPAREL, COLOR_MODEL, FOCUS_MODEL, FOOD, GENERAL, NSFW  # noqa: E402
from visionloop.inference.predictors import base_predictor  # noqa: E402
from visionloop.inference.runtime import ModelRuntime  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    encoded = [jpeg(photo(name)) for name in PHOTOS]
    pils = [Image.open(io.BytesIO(b)).convert("RGB") for b in encoded]
    runtime = ModelRuntime()
    runtime.warm()
    general = base_predictor(runtime, GENERAL.runtime)
    rows = []
    with server() as (base, key), httpx.Client(base_url=base, headers={"Authorization": f"Key {key}"},
                                               timeout=120) as client:
        for spec in (GENERAL, NSFW, COLOR_MODEL, FOCUS_MODEL, FOOD, APPAREL):
            predictor = base_predictor(runtime, spec.runtime)
            turn = itertools.cycle(range(len(PHOTOS)))
            current = {"i": 0}

            def reference() -> None:
                current["i"] = next(turn)
                general.predict([pils[current["i"]]])

            def bare() -> None:
                predictor.predict([pils[current["i"]]])

            def http_call() -> None:
                body = {"inputs": [{"data": {"image": {"base64": b64(encoded[current['i']])}}}]}
                client.post(f"/v2/models/{spec.id}/outputs", json=body).raise_for_status()

            ref_s, bare_s, http_s = alternated((reference, bare, http_call), args.repeats * len(PHOTOS))
            row = {"model": spec.name, **bare_vs_http(bare_s, http_s), "general_bare_p50_ms": pct(ref_s, 50) * 1e3}
            row["added_to_general_bare_ms"] = row["bare_p50_ms"] - row["general_bare_p50_ms"]
            rows.append(row)
            print(f"{spec.name:>16}: bare p50 {row['bare_p50_ms']:6.1f} ms p95 {row['bare_p95_ms']:6.1f} "
                  f"(general's {row['general_bare_p50_ms']:5.1f}: {row['added_to_general_bare_ms']:+6.1f}) | "
                  f"http p50 {row['http_p50_ms']:6.1f} ms p95 {row['http_p95_ms']:6.1f} | ratio {row['ratio_p50']:.2f}x",
                  flush=True)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "public_models.json").write_text(json.dumps({"load_avg": os.getloadavg(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
