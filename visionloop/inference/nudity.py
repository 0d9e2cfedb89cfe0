"""NSFW scores from NudeNet's body-part detector (PyPI ``nudenet`` 3.4.2, MIT, a YOLOv8n ONNX model).

Why this way: no offline NSFW *classifier* ships in a registry package; NudeNet's detector does,
and what it detects (exposed genitalia, breasts, buttocks, anus; covered parts; faces; feet) is
what an NSFW verdict is made of. Its package imports OpenCV, which this project does not install:
so it is installed with ``--no-deps`` and only its ``320n.onnx`` is read, run on the project's
onnxruntime with NudeNet's own pre-processing re-done in PIL/numpy (pad to a square on black at
the bottom and right, resize to 320 px, RGB in [0, 1]).

The score of an image is :func:`nsfw_scores`: the detector's highest confidence, over all its
candidate boxes, for any of the :data:`EXPLICIT` classes. No threshold and no box suppression
are involved (they change which boxes are kept, not the highest confidence).
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from visionloop.inference.preprocess import to_rgb

DISTRIBUTION = "nudenet"
MODEL_FILE = "nudenet/320n.onnx"
INPUT_SIZE = 320
# The detector's classes, in the order of its output rows 4..21 (from nudenet/nudenet.py).
LABELS: tuple[str, ...] = (
    "FEMALE_GENITALIA_COVERED", "FACE_FEMALE", "BUTTOCKS_EXPOSED", "FEMALE_BREAST_EXPOSED",
    "FEMALE_GENITALIA_EXPOSED", "MALE_BREAST_EXPOSED", "ANUS_EXPOSED", "FEET_EXPOSED", "BELLY_COVERED",
    "FEET_COVERED", "ARMPITS_COVERED", "ARMPITS_EXPOSED", "FACE_MALE", "BELLY_EXPOSED",
    "MALE_GENITALIA_EXPOSED", "ANUS_COVERED", "FEMALE_BREAST_COVERED", "BUTTOCKS_COVERED",
)
# Exposed sexual body parts. Covered parts (swimwear, underwear), faces, feet, armpits, bellies
# and a bare male chest are not NSFW by themselves.
EXPLICIT: frozenset[str] = frozenset({
    "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED", "BUTTOCKS_EXPOSED",
    "ANUS_EXPOSED",
})
_EXPLICIT_COLUMNS = np.array([LABELS.index(name) for name in sorted(EXPLICIT)])


class NudityModelNotInstalledError(RuntimeError):
    """The package that carries the detector is missing; the message says how to install it."""


def nudenet_model_path() -> Path:
    """The ``.onnx`` inside the installed ``nudenet`` wheel, found without importing the package
    (its ``__init__`` imports OpenCV)."""
    try:
        path = Path(str(importlib.metadata.distribution(DISTRIBUTION).locate_file(MODEL_FILE)))
    except importlib.metadata.PackageNotFoundError as exc:
        raise NudityModelNotInstalledError(
            "NudeNet's detector not found: run `python -m pip install --no-deps nudenet==3.4.2`") from exc
    if not path.is_file():
        raise NudityModelNotInstalledError(f"NudeNet's detector missing at {path}; reinstall the package")
    return path


def nsfw_scores(class_scores: np.ndarray) -> np.ndarray:
    """(N, len(LABELS)) per-class confidences -> (N,) NSFW scores in [0, 1]: the highest of the
    explicit classes' confidences."""
    class_scores = np.atleast_2d(np.asarray(class_scores, np.float32))
    return np.clip(class_scores[:, _EXPLICIT_COLUMNS].max(axis=1), 0.0, 1.0)


def letterbox(image: Image.Image) -> np.ndarray:
    """NudeNet's input for one image: (3, 320, 320) float32 RGB in [0, 1], the image scaled to fit
    at the top left of a black square (NudeNet pads to a square first, then resizes)."""
    image = to_rgb(image)
    scale = INPUT_SIZE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    canvas = Image.new("RGB", (INPUT_SIZE, INPUT_SIZE))
    canvas.paste(image.resize(size, Image.Resampling.BILINEAR), (0, 0))
    return np.asarray(canvas, np.float32).transpose(2, 0, 1) / 255.0


class NudityDetector:
    """NudeNet's YOLOv8n on onnxruntime's CPU provider; safe to call from several threads."""

    def __init__(self, *, threads: int | None = None, model: Path | None = None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the backbone's
        self._session = ort.InferenceSession(str(model or nudenet_model_path()), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def class_scores(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, len(LABELS)): each class's highest confidence over all candidate boxes of each image."""
        if not images:
            return np.zeros((0, len(LABELS)), np.float32)
        (out,) = self._session.run(None, {self._input: np.stack([letterbox(im) for im in images])})
        return np.asarray(out[:, 4:, :].max(axis=2), np.float32)  # rows 0-3 are the box (cx, cy, w, h)
