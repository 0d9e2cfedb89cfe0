"""One process-wide holder of the loaded networks, shared by every VisionLoop and request.

Networks load lazily on first use (the server warms them at start) and exactly once, under a
lock; the loaded sessions are safe to call from several threads.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image

from visionloop.models.concepts import ImageNetConcepts, load_imagenet_concepts

if TYPE_CHECKING:
    from visionloop.models.backbone import Backbone, BackboneOutput
    from visionloop.models.faces import Detection, FaceDetector


class ModelRuntime:
    def __init__(self, *, threads: int | None = None) -> None:
        self.threads = threads
        self._lock = threading.Lock()
        self._backbone: Backbone | None = None
        self._faces: FaceDetector | None = None

    @property
    def vocabulary(self) -> ImageNetConcepts:
        return load_imagenet_concepts()

    @property
    def backbone(self) -> Backbone:
        if self._backbone is None:
            with self._lock:
                if self._backbone is None:
                    from visionloop.models.backbone import Backbone

                    self._backbone = Backbone(threads=self.threads)
        return self._backbone

    @property
    def faces(self) -> FaceDetector:
        if self._faces is None:
            with self._lock:
                if self._faces is None:
                    from visionloop.models.faces import FaceDetector

                    self._faces = FaceDetector()
        return self._faces

    def forward(self, images: Sequence[Image.Image]) -> BackboneOutput:
        return self.backbone.forward(images)

    def detect_faces(self, image: Image.Image, min_score: float) -> list[Detection]:
        return self.faces.detect(image, min_score=min_score)

    def warm(self) -> None:
        """Load everything now so the first request does not pay for it."""
        _ = self.vocabulary, self.backbone, self.faces
