"""What a model says about one image, independent of the wire format."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from visionloop.learning.boxes import Box


@dataclasses.dataclass(frozen=True)
class ConceptScore:
    id: str
    name: str
    value: float


@dataclasses.dataclass(frozen=True)
class Color:
    """A dominant colour: its mean (``raw_hex``), the nearest W3C colour, its share of the pixels."""

    raw_hex: str
    w3c_hex: str
    w3c_name: str
    value: float


@dataclasses.dataclass(frozen=True)
class Focus:
    """How sharp an area is (``value``, 0..1) and how much of it carries sharp detail (``density``)."""

    value: float
    density: float


@dataclasses.dataclass(frozen=True)
class Region:
    id: str
    box: Box
    concepts: tuple[ConceptScore, ...]
    value: float
    focus: Focus | None = None  # the focus model's in-focus areas


@dataclasses.dataclass
class Prediction:
    """``concepts`` holds the top concepts, best first; ``lookup`` finds any other by id or name.
    ``embedding`` is unit-norm (what clients see); ``features`` the raw backbone features (stored).
    ``candidates`` are stored with the output, never shown: what the next training learns from."""

    concepts: list[ConceptScore] = dataclasses.field(default_factory=list)
    regions: list[Region] = dataclasses.field(default_factory=list)
    embedding: np.ndarray | None = None
    features: np.ndarray | None = None
    lookup: Callable[[str], ConceptScore | None] | None = None
    candidates: list[Region] | None = None  # a trained region version's raw detections, shown or not
    colors: list[Color] = dataclasses.field(default_factory=list)  # the color model's
    focus: Focus | None = None  # the focus model's, for the whole image

    def concept(self, ref: str) -> ConceptScore | None:
        for c in self.concepts:
            if ref in (c.id, c.name):
                return c
        return self.lookup(ref) if self.lookup else None
