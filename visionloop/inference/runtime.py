"""One process-wide holder of the loaded networks, shared by every VisionLoop and request.

Networks load lazily on first use (the server warms them at start) and exactly once, under a
lock; the loaded sessions are safe to call from several threads. Concurrent backbone forwards
(predicts, input adds, search queries, of any model or version: they all run the same network)
share forward passes through a :class:`DynamicBatcher`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from PIL import Image

# Imported here, in the importing (main) thread, not lazily in a request thread: onnxruntime's
# extension module has been seen to crash when first imported from a worker thread.
from visionloop.inference.backbone import DETECTION_SIZE, Backbone, BackboneOutput
from visionloop.inference.batching import BatchPolicy, DynamicBatcher
from visionloop.inference.concepts import ImageNetConcepts, load_imagenet_concepts
from visionloop.inference.faces import Detection, FaceDetector
from visionloop.inference.nudity import NudityDetector
from visionloop.inference.preprocess import imagenet_batch
from visionloop.metrics import METRICS

Logits = tuple[np.ndarray, np.ndarray]  # the backbone's raw (logits, features) for some images


class ModelRuntime:
    def __init__(self, *, threads: int | None = None, batching: BatchPolicy = BatchPolicy()) -> None:
        self.threads = threads
        self._batcher: DynamicBatcher[np.ndarray, Logits] = DynamicBatcher(self._run_batches, batching)
        self._lock = threading.Lock()
        self._backbone: Backbone | None = None
        self._faces: FaceDetector | None = None
        self._nudity: NudityDetector | None = None

    @property
    def vocabulary(self) -> ImageNetConcepts:
        return load_imagenet_concepts()

    @property
    def backbone(self) -> Backbone:
        if self._backbone is None:
            with self._lock:
                if self._backbone is None:
                    self._backbone = Backbone(threads=self.threads)
        return self._backbone

    @property
    def faces(self) -> FaceDetector:
        if self._faces is None:
            with self._lock:
                if self._faces is None:
                    self._faces = FaceDetector()
        return self._faces

    @property
    def nudity(self) -> NudityDetector:
        if self._nudity is None:
            with self._lock:
                if self._nudity is None:
                    self._nudity = NudityDetector(threads=self.threads)
        return self._nudity

    @property
    def batching(self) -> BatchPolicy:
        return self._batcher.policy

    def forward(self, images: Sequence[Image.Image]) -> BackboneOutput:
        """The backbone's output for these images, from a forward shared with concurrent callers.
        The images are cropped and normalised here, in the caller's thread, beside the running forward."""
        if not images:
            return self.backbone.forward(images)
        return BackboneOutput.from_network(*self._batcher.submit(imagenet_batch(images), len(images)))

    def _run_batches(self, batches: list[np.ndarray]) -> list[Logits]:
        """One forward of several callers' batches; each gets back the rows of its own images."""
        logits, features = self.backbone.logits(batches[0] if len(batches) == 1 else np.concatenate(batches))
        METRICS.dynamic_batch.observe(len(logits))
        ends = np.cumsum([len(b) for b in batches])[:-1]
        return list(zip(np.split(logits, ends), np.split(features, ends)))

    def feature_maps(self, images: Sequence[Image.Image]) -> np.ndarray:
        """The backbone's feature map of each whole image, as learned detectors read it."""
        return self.backbone.feature_maps(images, DETECTION_SIZE)

    def detect_faces(self, image: Image.Image, min_score: float) -> list[Detection]:
        return self.faces.detect(image, min_score=min_score)

    @property
    def loaded(self) -> bool:
        """Whether every network is loaded (:meth:`warm`), so no request pays for loading one."""
        return None not in (self._backbone, self._faces, self._nudity)

    def warm(self) -> None:
        """Load everything now so the first request does not pay for it."""
        _ = self.vocabulary, self.backbone, self.faces, self.nudity
