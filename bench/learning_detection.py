"""Detection learned from boxes: objects pasted onto photos, F1 and AP at IoU 0.5 vs boxes given.

    python -m bench.learning_detection [--quick] [--seed 0]   # or bench/learning.py --only detection

Data it makes from what the bench already has: two target emoji (npm ``emoji-datasource-google``,
64 px, upscaled) pasted onto random crops of scikit-image's photos, each 20-40% of the image width
at a random place; half the images also show an unrelated distractor emoji of the same size. The
boxes given to the learners are the targets' drawn boxes made loose as users draw them (each edge
moved by up to 10% of the box's size, so about 20% off in IoU); test boxes are exact. The test set
has as many images per target again, plus images that show none of the targets (half with a
distractor) for the false positives per image.

Learners, on the server's own backbone (in process, the code the server runs):
- ``detector``: :class:`visionloop.learning.detector.BoxDetector` on the feature map of the
  whole image (as the trained logo and custom detection versions predict);
- ``sliding_window``: the plain learner the issue measured — crops at the boxes' sizes and aspect
  ratios (stride half a window) embedded by the general model, a logistic regression on the drawn
  boxes' crop embeddings against windows that miss them, non-maximum suppression.

Times: training (the detector's fit, cross-validation and calibration included), and prediction
per image (one image per call, image already decoded) against the general model's forward pass
(the median over three rounds of 20 images, the two called in turn on each image).
Writes ``bench/out/learning_detection.json``; the sliding window's crop embeddings (most of the
run's time) are kept in ``bench/out`` for the next run with the same seed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression

from bench.datasets import emoji
from visionloop.inference.backbone import DETECTION_SIZE, Backbone
from visionloop.learning.boxes import Box
from visionloop.learning.detector import BoxDetector, _iou_matrix, nms
from visionloop.learning.metrics_detection import Scored, score_detections

TARGETS = ("pizza", "soccer")
DISTRACTORS = ("guitar", "crown", "taxi", "sunflower", "alarm_clock", "doughnut", "rocket", "heart")
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field", "immunohistochemistry",
          "brick", "grass", "gravel", "coins", "horse", "clock", "colorwheel")
SIDE = 320
OUT = Path(__file__).resolve().parent / "out" / "learning_detection.json"
Scene = tuple[Image.Image, list[tuple[str, Box]]]


def _photos() -> list[Image.Image]:
    import skimage.data

    return [Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in PHOTOS]


def _emoji_images() -> dict[str, Image.Image]:
    by_name = {e.short_name: e for e in emoji()}
    return {n: Image.open(by_name[n].path).convert("RGBA") for n in TARGETS + DISTRACTORS}


def _paste(canvas: Image.Image, sprite: Image.Image, rng: np.random.Generator, taken: list[Box]) -> Box:
    """Paste at 20-40% of the width where it overlaps nothing pasted; its box (alpha's extent)."""
    for _ in range(50):
        size = int(SIDE * rng.uniform(0.2, 0.4))
        x, y = (int(v) for v in rng.integers(0, SIDE - size, 2))
        box = (y / SIDE, x / SIDE, (y + size) / SIDE, (x + size) / SIDE)
        if all(_iou_matrix(np.array([box]), np.array([t]))[0, 0] == 0 for t in taken):
            break
    scaled = sprite.resize((size, size), Image.Resampling.BICUBIC)
    canvas.paste(scaled, (x, y), scaled)
    left, top, right, bottom = scaled.getchannel("A").getbbox() or (0, 0, size, size)
    return ((y + top) / SIDE, (x + left) / SIDE, (y + bottom) / SIDE, (x + right) / SIDE)


def scene(target: str | None, rng: np.random.Generator, photos: list[Image.Image],
          sprites: dict[str, Image.Image]) -> Scene:
    photo = photos[int(rng.integers(len(photos)))]
    w, h = photo.size
    side = int(min(w, h) * rng.uniform(0.6, 1.0))
    x, y = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
    canvas = photo.crop((x, y, x + side, y + side)).resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        canvas = canvas.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    truths: list[tuple[str, Box]] = []
    taken: list[Box] = []
    if target is not None:
        box = _paste(canvas, sprites[target], rng, taken)
        truths.append((target, box))
        taken.append(box)
    if rng.random() < 0.5:
        taken.append(_paste(canvas, sprites[str(rng.choice(DISTRACTORS))], rng, taken))
    return canvas, truths


def loosen(box: Box, rng: np.random.Generator, amount: float = 0.1) -> Box:
    """A box as a user draws it: each edge moved by up to ``amount`` of the box's size."""
    h, w = box[2] - box[0], box[3] - box[1]
    t, l, b, r = (v + rng.uniform(-amount, amount) * s for v, s in zip(box, (h, w, h, w), strict=True))
    return (max(0.0, t), max(0.0, l), min(1.0, max(b, t + 0.01)), min(1.0, max(r, l + 0.01)))


# -- the plain sliding-window learner -----------------------------------------------------------
def windows(boxes: Sequence[Box]) -> np.ndarray:
    """Windows at the drawn boxes' median size and aspect ratio (x0.75, x1, x1.33), stride half a window."""
    hs = np.median([b[2] - b[0] for b in boxes])
    ws = np.median([b[3] - b[1] for b in boxes])
    out = []
    for s in (0.75, 1.0, 1.33):
        h, w = min(1.0, hs * s), min(1.0, ws * s)
        for t in np.arange(0, 1 - h + 1e-9, h / 2):
            for l in np.arange(0, 1 - w + 1e-9, w / 2):
                out.append((t, l, t + h, l + w))
    return np.array(out)


def crops(image: Image.Image, boxes: np.ndarray) -> list[Image.Image]:
    w, h = image.size
    return [image.crop((int(l * w), int(t * h), max(int(l * w) + 1, int(r * w)), max(int(t * h) + 1, int(b * h))))
            for t, l, b, r in boxes]


class SlidingWindow:
    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone

    def embed(self, image: Image.Image, boxes: np.ndarray) -> np.ndarray:
        return self.backbone.forward(crops(image, boxes)).embeddings

    def fit(self, scenes: Sequence[Scene], given: Sequence[list[tuple[str, Box]]], grid: np.ndarray,
            grid_embeddings: Sequence[np.ndarray]) -> SlidingWindow:
        x, y = [], []
        for (image, _), boxes, emb in zip(scenes, given, grid_embeddings, strict=True):
            x.append(self.embed(image, np.array([b for _, b in boxes])))
            y += [c for c, _ in boxes]
            overlap = _iou_matrix(grid, np.array([b for _, b in boxes])).max(axis=1)
            x.append(emb[overlap < 0.3])
            y += ["(none)"] * int((overlap < 0.3).sum())
        self.model = LogisticRegression(C=1.0, max_iter=1000, class_weight="balanced").fit(np.concatenate(x), y)
        return self

    def predict(self, grid: np.ndarray, emb: np.ndarray) -> list[Scored]:
        probs = self.model.predict_proba(emb)
        out = []
        for k, c in enumerate(self.model.classes_):
            if c == "(none)":
                continue
            keep = np.flatnonzero(probs[:, k] >= 0.5)
            out += [Scored(c, tuple(grid[keep[j]]), float(probs[keep[j], k]))
                    for j in nms(grid[keep], probs[keep, k], 0.3, 10)]
        return out


# -- the run ------------------------------------------------------------------------------------
def figures(detections: Sequence[Sequence[Scored]], test: Sequence[Scene]) -> dict[str, float | None]:
    truths = [t for _, t in test]
    s = score_detections(detections, truths)
    empty = [len(d) for d, t in zip(detections, truths, strict=True) if not t]
    return {"precision": s.precision.value, "recall": s.recall.value, "f1": s.f1.value, "ap": s.ap,
            "fp_per_empty_image": float(np.mean(empty)) if empty else None}


def run(quick: bool, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    photos, sprites = _photos(), _emoji_images()
    backbone = Backbone(threads=2)
    sizes = (10, 30) if quick else (10, 30, 100)
    n_test = 20 if quick else 40
    pool = [scene(t, rng, photos, sprites) for t in TARGETS for _ in range(max(sizes))]
    given_pool = [[(c, loosen(b, rng)) for c, b in truths] for _, truths in pool]
    test = [scene(t, rng, photos, sprites) for t in TARGETS + (None,) for _ in range(n_test)]
    maps_pool = backbone.feature_maps([im for im, _ in pool], DETECTION_SIZE)
    maps_test = backbone.feature_maps([im for im, _ in test], DETECTION_SIZE)
    grid = windows([b for g in given_pool for _, b in g])
    cache = OUT.parent / f"learning_detection_windows_{seed}_{'quick' if quick else 'full'}.npz"
    if cache.exists():  # the scenes are the seed's: the window crops' embeddings are too
        with np.load(cache) as saved:
            window_emb_pool, window_emb_test = list(saved["pool"]), list(saved["test"])
    else:
        window_emb_pool = [SlidingWindow(backbone).embed(im, grid) for im, _ in pool]
        window_emb_test = [SlidingWindow(backbone).embed(im, grid) for im, _ in test]
        OUT.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, pool=np.stack(window_emb_pool), test=np.stack(window_emb_test))
    results: dict = {"targets": TARGETS, "side": SIDE, "detection_size": DETECTION_SIZE, "n_test": len(test),
                     "load": os.getloadavg()[0], "by_boxes": {}}
    for n in sizes:
        chosen = [i for k in range(len(TARGETS)) for i in range(k * max(sizes), k * max(sizes) + n)]
        t0 = time.perf_counter()
        detector = BoxDetector(random_state=seed).fit([maps_pool[i] for i in chosen], [given_pool[i] for i in chosen])
        train_s = time.perf_counter() - t0
        found = [[Scored(d.concept, d.box, d.value) for d in image] for image in detector.predict(list(maps_test))]
        t0 = time.perf_counter()
        window = SlidingWindow(backbone).fit([pool[i] for i in chosen], [given_pool[i] for i in chosen], grid,
                                             [window_emb_pool[i] for i in chosen])
        window_train_s = time.perf_counter() - t0
        window_found = [window.predict(grid, emb) for emb in window_emb_test]
        results["by_boxes"][n] = {"detector": {**figures(found, test), "train_s": train_s,
                                               "thresholds": detector.thresholds_},
                                  "sliding_window": {**figures(window_found, test), "train_s_without_crops": window_train_s}}
        print(n, "boxes per concept:", json.dumps(results["by_boxes"][n], default=float), flush=True)
    images = [im for im, _ in test[:20]]
    general, detect = _interleaved([lambda im: backbone.forward([im]),
                                    lambda im: detector.predict(list(backbone.feature_maps([im], DETECTION_SIZE)))],
                                   images)
    window_time = _per_image(lambda im: window.predict(grid, SlidingWindow(backbone).embed(im, grid)), images)
    results["predict_ms"] = {"general": general, "detector": detect, "sliding_window": window_time,
                             "detector_vs_general": detect / general}
    results["load_after"] = os.getloadavg()[0]
    print(json.dumps(results["predict_ms"]), flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2, default=float))
    return results


def _per_image(fn, images: Sequence[Image.Image]) -> float:  # type: ignore[no-untyped-def]
    fn(images[0])
    t0 = time.perf_counter()
    for im in images:
        fn(im)
    return (time.perf_counter() - t0) / len(images) * 1000


def _interleaved(fns, images: Sequence[Image.Image], rounds: int = 3) -> list[float]:  # type: ignore[no-untyped-def]
    """Median milliseconds per image of each function, called in turn on each image: on a shared
    machine both then see the same load, where timing one after the other compared two loads."""
    for fn in fns:
        fn(images[0])
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for im in images:
            for fn, spent in zip(fns, times, strict=True):
                t0 = time.perf_counter()
                fn(im)
                spent.append(time.perf_counter() - t0)
    return [float(np.median(spent)) * 1000 for spent in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    run(args.quick, args.seed)


if __name__ == "__main__":
    main()
