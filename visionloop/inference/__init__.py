"""The bundled models: an ImageNet backbone, its concepts, a face detector and a nudity detector.

Each runs offline on CPU from weights shipped in installed packages (nothing is downloaded):
- :class:`Backbone` — MobileNetV2 (torchvision ImageNet weights) on onnxruntime: class
  probabilities and a 1280-d embedding per image.
- :func:`load_imagenet_concepts` — the 1000 classes (WordNet ids, readable names) plus broader
  concepts ("dog", "cat", "vehicle", "food", ...) scored from the class probabilities.
- :class:`FaceDetector` — MediaPipe BlazeFace (full- and short-range) on LiteRT.
- :class:`NudityDetector` — NudeNet's YOLOv8n body-part detector on onnxruntime (the NSFW model).

Build each once per process and share it; all are safe to call from several threads.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public names -> defining module. Imported on first use, so that importing a light module of
# this package (concepts, predictions) does not load onnxruntime.
_EXPORTS = {
    "Backbone": "backbone",
    "BackboneOutput": "backbone",
    "WeightsNotInstalledError": "backbone",
    "Concept": "concepts",
    "ImageNetConcepts": "concepts",
    "ScoredConcept": "concepts",
    "load_imagenet_concepts": "concepts",
    "DEFAULT_MIN_SCORE": "faces",
    "Detection": "faces",
    "FaceDetector": "faces",
    "FaceModelNotInstalledError": "faces",
    "NudityDetector": "nudity",
    "NudityModelNotInstalledError": "nudity",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
