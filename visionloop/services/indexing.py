"""Analysing added inputs: embedding and general-model concepts, so search can use them at once.

Runs synchronously inside ``POST /v2/inputs`` (a 128-image batch is ~2 s of CPU), before the
write, so an input is stored together with its embedding and predicted concepts or not at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from visionloop.inference.catalog import GENERAL
from visionloop.services.images import CheckedImage, open_rgb
from visionloop.services.models import ModelService

BATCH = 32
MIN_SCORE = 0.01   # predicted concepts below this are not searchable
MAX_CONCEPTS = 64  # per input


@dataclasses.dataclass(frozen=True)
class Analysis:
    embedding: np.ndarray  # unit norm, for the vector index
    features: np.ndarray   # raw, for the database
    concepts: tuple[tuple[str, float], ...]


class InputAnalyzer:
    def __init__(self, models: ModelService) -> None:
        self.models = models

    def analyze(self, app_id: str, images: Sequence[CheckedImage]) -> list[Analysis]:
        """Embed and classify with the app's current version of the general model."""
        if not images:
            return []
        view = self.models.get(app_id, GENERAL.id)
        predictor = self.models.predictor(view.model, view.version)
        out: list[Analysis] = []
        for start in range(0, len(images), BATCH):
            chunk = images[start:start + BATCH]
            for pred in predictor.predict([open_rgb(im) for im in chunk]):
                assert pred.embedding is not None and pred.features is not None
                top = tuple((c.id, c.value) for c in pred.concepts[:MAX_CONCEPTS] if c.value >= MIN_SCORE)
                out.append(Analysis(pred.embedding, pred.features, top))
        return out
