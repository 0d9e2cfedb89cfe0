"""Predictors: turn images into :class:`Prediction` objects for each built-in runtime.

A model version resolves to one predictor; the base versions of the built-in models use these,
and trained versions (``visionloop.learning``) wrap them with what they learned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from PIL import Image

from visionloop.ids import new_id
from visionloop.inference.backbone import DETECTION_SIZE
from visionloop.inference.catalog import CUSTOM_DETECTOR, DOMAINS
from visionloop.inference.colors import THUMBNAIL as COLOR_SIDE
from visionloop.inference.colors import dominant_colors
from visionloop.inference.concepts import Concept, ImageNetConcepts
from visionloop.inference.focus import SIDE as FOCUS_SIDE
from visionloop.inference.focus import focus
from visionloop.inference.nudity import INPUT_SIZE as NUDITY_SIDE
from visionloop.inference.nudity import nsfw_scores
from visionloop.inference.predictions import Box, ConceptScore, Prediction, Region
from visionloop.inference.preprocess import RESIZE
from visionloop.inference.runtime import ModelRuntime

FACE_THRESHOLD = 0.5
# The image side each runtime needs at least (its versions too): a larger JPEG may be decoded down
# to it. The ImageNet backbone sees a 256 px shorter side; face crops want every pixel there is.
MIN_SIDE: dict[str, int] = {"general": RESIZE, "embedding": RESIZE, "custom": RESIZE,
                            "logo": DETECTION_SIZE, CUSTOM_DETECTOR: DETECTION_SIZE,
                            "nsfw": max(RESIZE, NUDITY_SIDE), "focus": FOCUS_SIDE, "color": COLOR_SIDE,
                            **{domain: RESIZE for domain in DOMAINS}}
NSFW, SFW = "nsfw", "sfw"


class Predictor(Protocol):
    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]: ...


TOP_CONCEPTS = 200  # ranked per image; the rest stay reachable through Prediction.lookup


def ranked_concepts(scores: np.ndarray, concepts: Sequence[Concept]) -> list[ConceptScore]:
    """The top concepts of one image, highest first."""
    top = np.argpartition(-scores, min(TOP_CONCEPTS, len(scores) - 1))[:TOP_CONCEPTS]
    order = top[np.argsort(-scores[top], kind="stable")]
    return [ConceptScore(concepts[i].id, concepts[i].name, float(scores[i])) for i in order]


def concept_lookup(scores: np.ndarray, vocab: ImageNetConcepts,
                   within: frozenset[int] | None = None) -> Callable[[str], ConceptScore | None]:
    """Find any concept's score by id or name (for select_concepts), without ranking them all;
    only among the columns ``within``, when given."""
    def find(ref: str) -> ConceptScore | None:
        try:
            i = vocab.index(ref)
        except KeyError:
            i = next((j for j, c in enumerate(vocab.concepts) if c.name == ref), -1)
        if i < 0 or (within is not None and i not in within):
            return None
        c = vocab.concepts[i]
        return ConceptScore(c.id, c.name, float(scores[i]))

    return find


class GeneralPredictor:
    """ImageNet classes plus broader WordNet concepts; keeps the embedding for search and learning."""

    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        out = self.runtime.forward(images)
        vocab = self.runtime.vocabulary
        scores = vocab.scores(out.probs)
        return [Prediction(concepts=ranked_concepts(row, vocab.concepts), embedding=emb, features=feat,
                           lookup=concept_lookup(row, vocab))
                for row, emb, feat in zip(scores, out.embeddings, out.features)]


class DomainPredictor:
    """A view of the general model: its scores for the ImageNet classes under one WordNet concept
    (and the broader concepts among them), unchanged; not renormalised, so a photo with nothing of
    the domain in it scores low throughout."""

    def __init__(self, runtime: ModelRuntime, root: str) -> None:
        self.runtime = runtime
        columns = runtime.vocabulary.under(root)
        self.columns = np.array(columns)
        self.concepts = [runtime.vocabulary.concepts[j] for j in columns]
        self.within = frozenset(columns)

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        out = self.runtime.forward(images)
        vocab = self.runtime.vocabulary
        return [Prediction(concepts=ranked_concepts(row[self.columns], self.concepts), embedding=emb, features=feat,
                           lookup=concept_lookup(row, vocab, self.within))
                for row, emb, feat in zip(vocab.scores(out.probs), out.embeddings, out.features)]


class NsfwPredictor:
    """``nsfw`` and ``sfw`` (1 - nsfw) from NudeNet's detector (:func:`nsfw_scores`). The backbone
    runs too: its features are stored with the output, which search and learned heads use."""

    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        nsfw = nsfw_scores(self.runtime.nudity.class_scores(images))
        out = self.runtime.forward(images)
        preds = []
        for score, emb, feat in zip(nsfw, out.embeddings, out.features):
            concepts = [ConceptScore(NSFW, NSFW, float(score)), ConceptScore(SFW, SFW, 1.0 - float(score))]
            preds.append(Prediction(concepts=sorted(concepts, key=lambda c: -c.value), embedding=emb, features=feat))
        return preds


class ColorPredictor:
    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        return [Prediction(colors=dominant_colors(image)) for image in images]


class FocusPredictor:
    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        preds = []
        for image in images:
            overall, regions = focus(image)
            preds.append(Prediction(focus=overall, regions=regions))
        return preds


class EmbeddingPredictor:
    def __init__(self, runtime: ModelRuntime) -> None:
        self.runtime = runtime

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        out = self.runtime.forward(images)
        return [Prediction(embedding=emb, features=feat) for emb, feat in zip(out.embeddings, out.features)]


class FacePredictor:
    """BlazeFace regions above a threshold, each with the concept ``face`` valued by its score."""

    def __init__(self, runtime: ModelRuntime, threshold: float = FACE_THRESHOLD) -> None:
        self.runtime = runtime
        self.threshold = threshold

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        preds = []
        for image in images:
            regions = [
                Region(id=new_id(), box=Box(d.top, d.left, d.bottom, d.right),
                       concepts=(ConceptScore("face", "face", float(d.score)),), value=float(d.score))
                for d in self.runtime.detect_faces(image, min_score=self.threshold)
            ]
            preds.append(Prediction(regions=regions))
        return preds


class EmptyRegionPredictor:
    """A region model with no prior knowledge: finds nothing until feedback trains a version."""

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        return [Prediction() for _ in images]


def base_predictor(runtime: ModelRuntime, kind: str) -> Predictor:
    if kind == "general":
        return GeneralPredictor(runtime)
    if kind in ("embedding", "custom"):  # a custom model's versions put learned heads on the features
        return EmbeddingPredictor(runtime)
    if kind == "face":
        return FacePredictor(runtime)
    if kind in ("logo", CUSTOM_DETECTOR):  # versions trained from boxes detect (services/training)
        return EmptyRegionPredictor()
    if kind in DOMAINS:
        return DomainPredictor(runtime, DOMAINS[kind])
    if kind == "nsfw":
        return NsfwPredictor(runtime)
    if kind == "color":
        return ColorPredictor()
    if kind == "focus":
        return FocusPredictor()
    raise ValueError(f"unknown model runtime {kind!r}")
