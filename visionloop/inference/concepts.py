"""ImageNet concepts: stable ids, readable names, and broader concepts people actually search for.

Why: a general model that only says "Egyptian Mau" is hard to use; users expect "cat" too. The
1000 fine classes keep their WordNet ids (``n02124075``) as stable concept ids, and each broader
concept (a WordNet hypernym such as ``n02121808`` "cat") scores the sum of the probabilities of
the classes under it. The data is a small committed JSON built offline by
``scripts/build_imagenet_concepts.py``; nothing else is read at run time.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from dataclasses import dataclass

import numpy as np

DATA_FILE = "imagenet_concepts.json"


@dataclass(frozen=True)
class Concept:
    """A concept the general model predicts: ``id`` is a WordNet noun id, ``name`` is readable."""

    id: str
    name: str


@dataclass(frozen=True)
class ScoredConcept:
    concept: Concept
    score: float


class ImageNetConcepts:
    """The 1000 ImageNet classes (torchvision order) followed by the broader concepts.

    ``concepts[j]`` names column ``j`` of :meth:`scores`; the first 1000 are the classes.
    """

    def __init__(self, classes: list[Concept], broader: list[Concept], members: list[list[int]]) -> None:
        if len(classes) != 1000:
            raise ValueError(f"expected 1000 ImageNet classes, got {len(classes)}")
        self.classes: tuple[Concept, ...] = tuple(classes)
        self.broader: tuple[Concept, ...] = tuple(broader)
        self.concepts: tuple[Concept, ...] = self.classes + self.broader
        membership = np.zeros((len(broader), len(classes)), dtype=np.float32)
        for row, indices in enumerate(members):
            membership[row, indices] = 1.0
        membership.setflags(write=False)
        self.membership = membership  # (broader, 1000): 1 where a class is under a concept
        self._index = {c.id: i for i, c in enumerate(self.concepts)}
        if len(self._index) != len(self.concepts):
            raise ValueError("concept ids must be unique")

    def __len__(self) -> int:
        return len(self.concepts)

    def index(self, concept_id: str) -> int:
        """Column of ``concept_id`` in :meth:`scores`; ``KeyError`` if unknown."""
        return self._index[concept_id]

    def members(self, concept_id: str) -> tuple[Concept, ...]:
        """The ImageNet classes a broader concept covers (a class covers itself)."""
        i = self.index(concept_id)
        if i < len(self.classes):
            return (self.classes[i],)
        return tuple(self.classes[j] for j in np.flatnonzero(self.membership[i - len(self.classes)]))

    def under(self, concept_id: str) -> tuple[int, ...]:
        """Columns of :meth:`scores` within a concept: the classes it covers, then every broader
        concept (itself included) whose classes all are among them."""
        members = {self._index[c.id] for c in self.members(concept_id)}
        within = [len(self.classes) + row for row in range(len(self.broader))
                  if set(np.flatnonzero(self.membership[row]).tolist()) <= members]
        return tuple(sorted(members)) + tuple(within)

    def scores(self, probs: np.ndarray) -> np.ndarray:
        """Class probabilities (N, 1000) -> scores for every concept (N, 1000 + broader)."""
        probs = np.asarray(probs, dtype=np.float32)
        broader = np.minimum(probs @ self.membership.T, 1.0)
        return np.concatenate([probs, broader], axis=1)

    def top(self, scores: np.ndarray, k: int = 20, *, min_score: float = 0.0) -> list[ScoredConcept]:
        """The ``k`` best concepts for one image's row of :meth:`scores`, best first."""
        order = np.argsort(-scores, kind="stable")[:k]
        return [ScoredConcept(self.concepts[j], float(scores[j])) for j in order if scores[j] >= min_score]


@functools.lru_cache(maxsize=1)
def load_imagenet_concepts() -> ImageNetConcepts:
    """Read the committed concept data (immutable, so one shared copy per process)."""
    raw = json.loads((importlib.resources.files("visionloop.inference") / "data" / DATA_FILE).read_text("utf-8"))
    classes = [Concept(c["id"], c["name"]) for c in raw["classes"]]
    broader = [Concept(b["id"], b["name"]) for b in raw["broader"]]
    return ImageNetConcepts(classes, broader, [b["classes"] for b in raw["broader"]])
