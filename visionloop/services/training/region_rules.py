"""What a region version learned, and the predictor that applies it to a detector's candidates.

A ``region_calibration`` version keeps three corrections (numpy arrays + JSON, never a pickle):

- a score threshold per concept (:func:`~visionloop.learning.region_calibration.calibrate_thresholds`),
  the base version's threshold for concepts without enough judged detections;
- a box correction per concept, where leave-one-out said it helps
  (:func:`~visionloop.learning.region_calibration.fit_box_corrections`);
- the crop embeddings of detections judged ``false_positive`` — and of real ones, so a concept's
  true look is never suppressed: a detection whose crop lies close to at least two remembered
  false positives is dropped (:func:`~visionloop.learning.region_calibration.suppression_mask`).
  The memory is the model's, across its concepts (the face model has one).

Its predictor runs the detector down to :data:`CANDIDATE_FLOOR` and applies, in order, the
threshold, the suppression and the box correction. Every candidate comes back too
(``Prediction.candidates``, stored with the output) so that the next training can tell which
low-score candidate a ``not_detected`` box was, and can re-play any version on the same output.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from visionloop.inference.predictions import ConceptScore, Prediction, Region
from visionloop.inference.runtime import ModelRuntime
from visionloop.learning.artifact import pack, unpack
from visionloop.learning.boxes import Box
from visionloop.learning.region_calibration import shift_box, suppression_mask

REGION_KIND = "region_calibration"
FORMAT = "visionloop.region_rules/1"
CANDIDATE_FLOOR = 0.1  # the detector's min_score in a trained version: weaker candidates are noise
MAX_DISTANCE = 0.1  # cosine distance within which a crop repeats a remembered false positive
MIN_NEIGHBOURS = 2  # remembered false positives a crop must repeat to be dropped


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One raw detection: the detector's box and score, before any correction."""

    id: str
    concept: str
    name: str
    box: Box
    score: float


Embed = Callable[[Sequence[Candidate]], np.ndarray]  # unit crop embeddings, one row per candidate


def _empty() -> np.ndarray:
    return np.zeros((0, 0), np.float32)


@dataclasses.dataclass
class RegionRules:
    default: float  # the threshold of concepts without a calibrated one
    thresholds: dict[str, float] = dataclasses.field(default_factory=dict)
    corrections: dict[str, tuple[float, float, float, float]] = dataclasses.field(default_factory=dict)
    negatives: np.ndarray = dataclasses.field(default_factory=_empty)  # false-positive crops (n, d)
    positives: np.ndarray = dataclasses.field(default_factory=_empty)  # accurate crops (m, d)
    max_distance: float = MAX_DISTANCE
    min_neighbours: int = MIN_NEIGHBOURS

    def threshold(self, concept: str) -> float:
        return self.thresholds.get(concept, self.default)

    @property
    def suppresses(self) -> bool:
        return len(self.negatives) >= self.min_neighbours

    def apply(self, candidates: Sequence[Candidate], embed: Embed | None = None) -> list[tuple[Candidate, Box]]:
        """The candidates shown, each with its (corrected) box; ``embed`` is asked only when the
        version suppresses, and only for the candidates above their threshold."""
        kept = [c for c in candidates if c.score >= self.threshold(c.concept)]
        if kept and self.suppresses:
            if embed is None:
                raise ValueError("a version that suppresses false positives needs the candidates' crop embeddings")
            drop = suppression_mask(embed(kept), self.negatives, max_distance=self.max_distance,
                                    min_neighbours=self.min_neighbours,
                                    positives=self.positives if len(self.positives) else None)
            kept = [c for c, dropped in zip(kept, drop, strict=True) if not dropped]
        return [(c, self._corrected(c)) for c in kept]

    def _corrected(self, c: Candidate) -> Box:
        delta = self.corrections.get(c.concept)
        return c.box if delta is None else shift_box(c.box, delta)

    # -- artifact -------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        meta = {"format": FORMAT, "default": self.default, "thresholds": self.thresholds,
                "corrections": {c: list(d) for c, d in self.corrections.items()},
                "max_distance": self.max_distance, "min_neighbours": self.min_neighbours}
        return pack(meta, {"negatives": self.negatives.astype(np.float32),
                           "positives": self.positives.astype(np.float32)})

    @classmethod
    def from_bytes(cls, data: bytes) -> RegionRules:
        meta, arrays = unpack(data, FORMAT)
        negatives, positives = arrays["negatives"], arrays["positives"]
        return cls(default=float(meta["default"]), thresholds={c: float(t) for c, t in meta["thresholds"].items()},
                   corrections={c: (d[0], d[1], d[2], d[3]) for c, d in meta["corrections"].items()},
                   negatives=negatives, positives=positives, max_distance=float(meta["max_distance"]),
                   min_neighbours=int(meta["min_neighbours"]))


def crop_embeddings(runtime: ModelRuntime, image: Image.Image, boxes: Sequence[Box]) -> np.ndarray:
    """Unit backbone embeddings of the image's crops at ``boxes`` (fractions of the image)."""
    w, h = image.size
    crops = []
    for top, left, bottom, right in boxes:
        x0, y0 = min(int(left * w), w - 1), min(int(top * h), h - 1)
        crops.append(image.crop((x0, y0, max(x0 + 1, int(round(right * w))), max(y0 + 1, int(round(bottom * h))))))
    return runtime.forward(crops).embeddings


def _region(c: Candidate, box: Box) -> Region:
    return Region(id=c.id, box=Box(*box), concepts=(ConceptScore(c.concept, c.name, c.score),), value=c.score)


Detect = Callable[[Image.Image, float], list[Candidate]]


class RegionRulesPredictor:
    """A trained region version: the detector at :data:`CANDIDATE_FLOOR`, then the version's rules."""

    def __init__(self, detect: Detect, runtime: ModelRuntime, rules: RegionRules) -> None:
        self.detect = detect
        self.runtime = runtime
        self.rules = rules

    def predict(self, images: Sequence[Image.Image]) -> list[Prediction]:
        preds = []
        for image in images:
            candidates = self.detect(image, CANDIDATE_FLOOR)

            def embed(cs: Sequence[Candidate], image: Image.Image = image) -> np.ndarray:
                return crop_embeddings(self.runtime, image, [c.box for c in cs])

            shown = self.rules.apply(candidates, embed)
            preds.append(Prediction(regions=[_region(c, box) for c, box in shown],
                                    candidates=[_region(c, c.box) for c in candidates]))
        return preds
