"""What a model version says about images, recomputed from their stored features.

Evaluation and champion/challenger comparisons need every version's scores on the same held-out
images; re-running the network is unnecessary because the raw backbone features are stored: the
general model's last layer turns them back into class scores, and learned heads apply on top.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from visionloop.inference.catalog import DOMAINS
from visionloop.inference.predictions import ConceptScore, Prediction
from visionloop.inference.predictors import Predictor
from visionloop.inference.runtime import ModelRuntime
from visionloop.learning.heads import ConceptHeads, combine
from visionloop.services.training.data import unit_rows

HEADS_KIND = "concept_heads"


def base_scores(runtime: ModelRuntime, model_runtime: str, features: np.ndarray,
                concepts: Sequence[str]) -> list[dict[str, float]]:
    """The base model's score for each concept it knows, per image (unknown concepts are absent)."""
    if model_runtime not in ("general", *DOMAINS) or not len(features):
        return [{} for _ in range(len(features))]
    vocab = runtime.vocabulary
    scores = vocab.scores(runtime.backbone.class_probs(features))
    known = set(vocab.under(DOMAINS[model_runtime])) if model_runtime in DOMAINS else None  # a view of general
    columns = []
    for c in concepts:
        try:
            j = vocab.index(c)
        except KeyError:
            continue
        if known is None or j in known:
            columns.append((c, j))
    return [{c: float(row[j]) for c, j in columns} for row in scores]


def head_scores(heads: ConceptHeads | None, features: np.ndarray, base: list[dict[str, float]],
                blend_k: float) -> list[dict[str, float]]:
    """Base scores with the heads' calibrated probabilities blended in by their shares."""
    if heads is None:
        return base
    shares = heads.shares(blend_k)
    return [combine(b, h, shares) for b, h in zip(base, heads.scores(unit_rows(features)))]


class HeadPredictor:
    """A version with learned heads: the base model's prediction, re-scored and re-ranked."""

    def __init__(self, base: Predictor, heads: ConceptHeads, names: dict[str, str], blend_k: float) -> None:
        self.base = base
        self.heads = heads
        self.names = names
        self.blend_k = blend_k

    def predict(self, images: Sequence[object]) -> list[Prediction]:
        preds = self.base.predict(images)  # type: ignore[arg-type]
        if not preds:
            return preds
        feats = np.stack([p.features for p in preds])  # type: ignore[misc]
        shares = self.heads.shares(self.blend_k)
        for pred, learned in zip(preds, self.heads.scores(unit_rows(feats))):
            known = {cid: c.value for cid in learned if (c := pred.concept(cid)) is not None}
            blended = combine(known, learned, shares)
            self._rescore(pred, blended)
        return preds

    def _rescore(self, pred: Prediction, blended: dict[str, float]) -> None:
        scored = {cid: ConceptScore(cid, self.names.get(cid, cid), v) for cid, v in blended.items()}
        rest = [c for c in pred.concepts if c.id not in scored]
        pred.concepts = sorted(rest + list(scored.values()), key=lambda c: -c.value)
        base_lookup = pred.lookup

        def lookup(ref: str) -> ConceptScore | None:
            hit = next((c for c in scored.values() if ref in (c.id, c.name)), None)
            return hit or (base_lookup(ref) if base_lookup else None)

        pred.lookup = lookup
