"""A detector learned from boxes, on a frozen backbone's spatial feature map.

Why this design: the bundled MobileNetV2 knows what things look like, not where they are, and the
boxes users draw are few (tens per concept). So nothing deep is trained. The feature map of the
whole image (a grid of cells, each a vector of the backbone's channels) is reduced by PCA; a
candidate box is described by the mean of the reduced cells inside it, inside its central half
and in the ring around it (twice its size), three area-weighted averages read from integral
images in constant time per box, so thousands of candidates cost a few milliseconds. Candidates
take the shapes of the drawn boxes (k-means over their log sizes, a little rescaled) at every
position of the grid (``fine`` positions a cell). Per concept, a class-balanced least-squares
head scores candidates (positives: IoU >= 0.7 with a drawn box; negatives: IoU < 0.5, drawn false
positives, other concepts' objects, everything else) and a ridge regression moves a kept box
towards where drawn boxes were; suppression keeps each cluster's score-weighted mean box. The
strict positives teach the heads where an object is, not only what it is.

Values are calibrated: a k-fold over images gives every training image detections from heads that
did not see it; a Platt scaling of those detections' scores (a true positive is IoU >= 0.5 with a
drawn box of its concept) turns a head score into the probability that the detection is right,
and the shown threshold is the value that maximised F1 on those detections. The same out-of-fold
detections (``oof_``) are the cross-validated evaluation a caller reports.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Self

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

from visionloop.learning.artifact import pack, unpack
from visionloop.learning.boxes import Box, iou

Truths = Sequence[Sequence[tuple[str, Box]]]  # per image: (concept, box) pairs
FORMAT = "visionloop.box_detector/1"
MATCH_IOU = 0.5
PCA_CELLS = 5000  # feature-map cells the reduction is fitted on
MAX_CANDIDATES = 400  # per concept and image, the best-scoring ones suppression looks at


@dataclasses.dataclass(frozen=True)
class Detection:
    concept: str
    box: Box
    value: float  # calibrated probability that the detection is right


@dataclasses.dataclass
class _Head:
    """One concept's linear scorer and box refiner, folded out of their scikit-learn pipelines."""

    weights: np.ndarray  # (d,)
    bias: float
    refine_weights: np.ndarray | None  # (d, 4)
    refine_bias: np.ndarray | None  # (4,)
    platt: tuple[float, float] = (1.0, 0.0)


@dataclasses.dataclass(frozen=True)
class _Projection:
    """The heads as channels of a map: three a head for its score (its weights on the inside, centre
    and ring means), twelve for its box refinement (four deltas, three parts each). Pooling over a box
    and the heads are linear, so the map projected on these channels, pooled, gives every candidate's
    score and refinement: a few channels a head pooled instead of hundreds, and with the PCA folded
    in (:meth:`on_raw`) the reduced map is never computed at prediction."""

    matrix: np.ndarray  # (channels in, channels out)
    shift: np.ndarray  # (channels out,), subtracted after the product
    columns: tuple[tuple[int, int | None], ...]  # per head: its first score channel, first refinement channel

    @classmethod
    def of(cls, heads: dict[str, _Head], d: int) -> _Projection:
        """On the reduced map (``d`` channels)."""
        blocks, columns, at = [], [], 0
        for head in heads.values():
            blocks.append(head.weights.reshape(3, d).T)
            refine_at = None
            if head.refine_weights is not None:
                blocks.append(head.refine_weights.reshape(3, d, 4).transpose(1, 0, 2).reshape(d, 12))
                refine_at = at + 3
            columns.append((at, refine_at))
            at += 3 if refine_at is None else 15
        matrix = np.concatenate(blocks, axis=1).astype(np.float32) if blocks else np.zeros((d, 0), np.float32)
        return cls(matrix, np.zeros(matrix.shape[1], np.float32), tuple(columns))

    def on_raw(self, pca_mean: np.ndarray, pca_components: np.ndarray) -> _Projection:
        """The same on the backbone's map, the PCA's centring and rotation folded in."""
        matrix = (pca_components.T @ self.matrix).astype(np.float32)
        return _Projection(matrix, (pca_mean @ matrix + self.shift).astype(np.float32), self.columns)

    def __call__(self, feature_map: np.ndarray) -> np.ndarray:
        g, w, c = np.shape(feature_map)
        out: np.ndarray = np.asarray(feature_map, np.float32).reshape(-1, c) @ self.matrix - self.shift
        return out.reshape(g, w, -1)


def _linear(pipeline: Pipeline) -> tuple[np.ndarray, np.ndarray]:
    """A fitted StandardScaler + Ridge as one affine map: (weights, bias)."""
    scaler, ridge = pipeline[0], pipeline[-1]
    coef = np.atleast_2d(ridge.coef_).T / scaler.scale_[:, None]  # (d, outputs)
    return coef.astype(np.float32), (np.atleast_1d(ridge.intercept_) - scaler.mean_ @ coef).astype(np.float32)


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4), as (top, left, bottom, right)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    top = np.maximum(a[:, None, 0], b[None, :, 0])
    left = np.maximum(a[:, None, 1], b[None, :, 1])
    bottom = np.minimum(a[:, None, 2], b[None, :, 2])
    right = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    overlap: np.ndarray = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)  # stubs: Any
    return overlap


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, limit: int) -> list[int]:
    """Indexes of the boxes kept by greedy non-maximum suppression, best first."""
    order = list(np.argsort(-scores, kind="stable"))
    kept: list[int] = []
    while order and len(kept) < limit:
        best = order.pop(0)
        kept.append(best)
        if order:
            overlap = _iou_matrix(boxes[[best]], boxes[order])[0]
            order = [i for i, o in zip(order, overlap, strict=True) if o < threshold]
    return kept


def fused_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, limit: int) -> list[tuple[np.ndarray, float]]:
    """Non-maximum suppression that keeps each cluster's score-weighted mean box and best score.

    Neighbouring candidates of one object all score well; their refined boxes scatter around it
    and their mean lands closer than the best one alone."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores = boxes[order], scores[order]
    kept: list[tuple[np.ndarray, float]] = []
    while len(scores) and len(kept) < limit:
        cluster = _iou_matrix(boxes[:1], boxes)[0] >= threshold
        cluster[0] = True
        weights = scores[cluster] - scores[cluster].min() + 1e-6
        kept.append(((boxes[cluster] * weights[:, None]).sum(0) / weights.sum(), float(scores[0])))
        boxes, scores = boxes[~cluster], scores[~cluster]
    return kept


def _fine_integral(reduced: np.ndarray, fine: int) -> np.ndarray:
    """The integral image of a (g, g, d) map sampled every 1/fine cell: (fine*g+1, fine*g+1, d).

    The integral of a piecewise-constant map is bilinear inside each cell, so sampling it between
    cell corners by linear interpolation is exact."""
    g = reduced.shape[0]
    integral = np.zeros((g + 1, g + 1, reduced.shape[2]), np.float64)
    integral[1:, 1:] = reduced.cumsum(0).cumsum(1)
    points = np.linspace(0, g, fine * g + 1)
    low = np.minimum(np.floor(points).astype(int), g - 1)
    frac = points - low
    rows = integral[low] * (1 - frac)[:, None, None] + integral[low + 1] * frac[:, None, None]
    sampled: np.ndarray = rows[:, low] * (1 - frac)[None, :, None] + rows[:, low + 1] * frac[None, :, None]
    return sampled.astype(np.float32)


def _box_sums(fine: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Sums of the map over integer fine-grid boxes (n, 4) -> (n, d)."""
    t, l, b, r = boxes.T
    sums: np.ndarray = fine[b, r] - fine[t, r] - fine[b, l] + fine[t, l]  # fancy indexing: Any
    return sums


def _features(fine: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean inside, mean of the central half, mean of the surrounding ring: (n, 3d)."""
    n_fine = fine.shape[0] - 1
    t, l, b, r = boxes.T
    h, w = b - t, r - l
    centre = np.stack([t + h // 4, l + w // 4, b - h // 4, r - w // 4], 1)
    centre[:, 2] = np.maximum(centre[:, 2], centre[:, 0] + 1)
    centre[:, 3] = np.maximum(centre[:, 3], centre[:, 1] + 1)
    outer = np.clip(np.stack([t - h // 2, l - w // 2, b + h // 2, r + w // 2], 1), 0, n_fine)

    def area(x: np.ndarray) -> np.ndarray:
        sizes: np.ndarray = (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
        return sizes.astype(np.float32)[:, None]

    inner_sum = _box_sums(fine, boxes)
    ring_area = area(outer) - area(boxes)
    ring = (_box_sums(fine, outer) - inner_sum) / np.maximum(ring_area, 1.0)
    return np.concatenate([inner_sum / area(boxes), _box_sums(fine, centre) / area(centre), ring], axis=1)


def _some_cells(feature_map: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    flat = np.asarray(feature_map).reshape(-1, np.shape(feature_map)[2])
    return flat[rng.choice(len(flat), min(n, len(flat)), replace=False)].astype(np.float32)


def _to_fraction(boxes: np.ndarray, n_fine: int) -> np.ndarray:
    return boxes.astype(np.float64) / n_fine


def _snap(boxes: np.ndarray, n_fine: int) -> np.ndarray:
    """Fraction boxes (n, 4) to the nearest non-empty integer fine-grid boxes."""
    snapped = np.clip(np.round(np.asarray(boxes, np.float64).reshape(-1, 4) * n_fine), 0, n_fine).astype(int)
    snapped[:, 2] = np.clip(np.maximum(snapped[:, 2], snapped[:, 0] + 1), 1, n_fine)
    snapped[:, 3] = np.clip(np.maximum(snapped[:, 3], snapped[:, 1] + 1), 1, n_fine)
    snapped[:, 0] = np.minimum(snapped[:, 0], snapped[:, 2] - 1)
    snapped[:, 1] = np.minimum(snapped[:, 1], snapped[:, 3] - 1)
    return snapped


def _deltas(anchors: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Box regression targets: centre shift in anchor sizes, log size ratio."""
    ah, aw = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    th, tw = targets[:, 2] - targets[:, 0], targets[:, 3] - targets[:, 1]
    return np.stack([((targets[:, 0] + targets[:, 2]) - (anchors[:, 0] + anchors[:, 2])) / 2 / ah,
                     ((targets[:, 1] + targets[:, 3]) - (anchors[:, 1] + anchors[:, 3])) / 2 / aw,
                     np.log(th / ah), np.log(tw / aw)], 1)


def _apply_deltas(anchors: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    ah, aw = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    cy = (anchors[:, 0] + anchors[:, 2]) / 2 + deltas[:, 0] * ah
    cx = (anchors[:, 1] + anchors[:, 3]) / 2 + deltas[:, 1] * aw
    h, w = ah * np.exp(np.clip(deltas[:, 2], -1, 1)), aw * np.exp(np.clip(deltas[:, 3], -1, 1))
    boxes: np.ndarray = np.clip(np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], 1), 0.0, 1.0)
    return boxes


class BoxDetector(BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no type hints: BaseEstimator is Any
    """Learns concepts' boxes from feature maps; ``fit(maps, truths, false_positives)``.

    ``maps``: per image a (g, g, c) feature map (all of one size); ``truths``: per image its
    (concept, box) pairs, every other area of the image being no object of any learned concept;
    ``false_positives``: per image boxes said not to show their concept.
    """

    def __init__(self, *, n_components: int = 192, n_shapes: int = 5, scales: tuple[float, ...] = (0.8, 1.0, 1.25),
                 positive_iou: float = 0.7, negative_iou: float = 0.5, negatives_per_image: int = 48,
                 alpha: float = 300.0, ridge_alpha: float = 30.0, nms_iou: float = 0.3, max_detections: int = 10,
                 n_folds: int = 3, fine: int = 1, random_state: int = 0) -> None:
        self.n_components = n_components
        self.n_shapes = n_shapes
        self.scales = scales
        self.positive_iou = positive_iou
        self.negative_iou = negative_iou
        self.negatives_per_image = negatives_per_image
        self.alpha = alpha
        self.ridge_alpha = ridge_alpha
        self.nms_iou = nms_iou
        self.max_detections = max_detections
        self.n_folds = n_folds
        self.fine = fine
        self.random_state = random_state

    # -- fitting --------------------------------------------------------------------------------
    def fit(self, maps: Sequence[np.ndarray], truths: Truths, false_positives: Truths | None = None) -> Self:
        if len(maps) != len(truths) or (false_positives is not None and len(false_positives) != len(maps)):
            raise ValueError("maps, truths and false_positives need one entry per image")
        if not maps:
            raise ValueError("no images to learn from")
        shapes = {np.shape(m) for m in maps}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3:
            raise ValueError(f"feature maps must all have one (g, g, c) shape, got {sorted(shapes)[:3]}")
        fps: Truths = false_positives if false_positives is not None else [[] for _ in maps]
        self.concepts_ = sorted({c for image in truths for c, _ in image})
        if not self.concepts_:
            raise ValueError("no boxes to learn from")
        with _blas().limit(limits=1, user_api="blas"):  # as for predicting (see there)
            return self._fit(maps, truths, fps)

    def _fit(self, maps: Sequence[np.ndarray], truths: Truths, fps: Truths) -> Self:
        rng = np.random.default_rng(self.random_state)
        per_image = max(1, PCA_CELLS // len(maps))  # sampled image by image: maps may be stored small
        cells = np.concatenate([_some_cells(m, per_image, rng) for m in maps])
        pca = PCA(n_components=min(self.n_components, *cells.shape), random_state=self.random_state).fit(cells)
        self.pca_mean_, self.pca_components_ = pca.mean_.astype(np.float32), pca.components_.astype(np.float32)
        self.grid_ = int(np.shape(maps[0])[0])
        self.anchors_ = self._anchors([b for image in truths for _, b in image])
        fine = [self._fine(m) for m in maps]
        folds = rng.permutation(len(maps)) % max(2, self.n_folds)
        oof: list[list[tuple[str, Box, float]]] = [[] for _ in maps]
        if len(maps) >= 2 * self.n_folds:
            for k in range(self.n_folds):
                train = [i for i in range(len(maps)) if folds[i] != k]
                heads = self._fit_heads([fine[i] for i in train], [truths[i] for i in train],
                                        [fps[i] for i in train], rng)
                projection = _Projection.of(heads, self.pca_components_.shape[0])
                for i in np.flatnonzero(folds == k):  # an integral image is linear in its map: project it
                    oof[i] = self._raw_detections(projection(fine[i]), heads, projection)
        self.heads_ = self._fit_heads(fine, truths, fps, rng)
        self._calibrate(oof, truths)
        self._project()
        self.oof_ = [[Detection(c, b, self._value(c, s)) for c, b, s in image] for image in oof]
        self.oof_evaluated_ = len(maps) >= 2 * self.n_folds
        return self

    def _project(self) -> None:
        self.projection_ = _Projection.of(self.heads_, self.pca_components_.shape[0]).on_raw(
            self.pca_mean_, self.pca_components_)

    def _fine(self, feature_map: np.ndarray) -> np.ndarray:
        g, _, c = np.shape(feature_map)
        reduced = (np.asarray(feature_map, np.float32).reshape(-1, c) - self.pca_mean_) @ self.pca_components_.T
        return _fine_integral(reduced.reshape(g, g, -1), self.fine)

    def _anchors(self, boxes: Sequence[Box]) -> np.ndarray:
        """Candidate boxes on the fine grid: the drawn boxes' shapes, rescaled, at every position."""
        n_fine = self.fine * self.grid_
        sizes = np.log(np.array([[max(b[2] - b[0], 1e-3), max(b[3] - b[1], 1e-3)] for b in boxes]))
        k = min(self.n_shapes, len(np.unique(np.round(sizes, 2), axis=0)))
        centres = KMeans(n_clusters=k, n_init=3, random_state=self.random_state).fit(sizes).cluster_centers_
        shapes = {(int(np.clip(round(np.exp(h) * s * n_fine), 1, n_fine)), int(np.clip(round(np.exp(w) * s * n_fine), 1, n_fine)))
                  for h, w in centres for s in self.scales}
        anchors = [(t, l, t + h, l + w) for h, w in sorted(shapes)
                   for t in range(n_fine - h + 1) for l in range(n_fine - w + 1)]
        return np.array(anchors, dtype=int)

    def _samples(self, fine: np.ndarray, truths: Sequence[tuple[str, Box]], fps: Sequence[tuple[str, Box]],
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[tuple[str, Box]], list[str | None]]:
        """Features of one image's training boxes, their fine boxes, best truth and false-positive concept."""
        n_fine = fine.shape[0] - 1
        truth_boxes = np.array([b for _, b in truths], np.float64).reshape(-1, 4)
        frac = _to_fraction(self.anchors_, n_fine)
        overlap = _iou_matrix(frac, truth_boxes).max(axis=1) if len(truths) else np.zeros(len(frac))
        positive = np.flatnonzero(overlap >= self.positive_iou)
        near = np.flatnonzero((overlap >= 0.1) & (overlap < self.positive_iou))
        far = np.flatnonzero(overlap < 0.1)
        half = self.negatives_per_image // 2
        chosen = np.concatenate([positive, rng.choice(near, min(half, len(near)), replace=False),
                                 rng.choice(far, min(self.negatives_per_image - min(half, len(near)), len(far)),
                                            replace=False)])
        boxes = np.concatenate([self.anchors_[chosen], _snap(truth_boxes, n_fine),
                                _snap(np.array([b for _, b in fps]), n_fine)]).astype(int)
        fp_of: list[str | None] = [None] * (len(chosen) + len(truths)) + [c for c, _ in fps]
        return _features(fine, boxes), boxes, list(truths), fp_of

    def _fit_heads(self, fine: Sequence[np.ndarray], truths: Truths, fps: Truths,
                   rng: np.random.Generator) -> dict[str, _Head]:
        feats: list[np.ndarray] = []
        labels: dict[str, list[np.ndarray]] = {c: [] for c in self.concepts_}
        targets: dict[str, list[np.ndarray]] = {c: [] for c in self.concepts_}
        for f, image_truths, image_fps in zip(fine, truths, fps, strict=True):
            x, boxes, image_truths, fp_of = self._samples(f, image_truths, image_fps, rng)
            frac = _to_fraction(boxes, f.shape[0] - 1)
            feats.append(x)
            for c in self.concepts_:
                mine = np.array([b for tc, b in image_truths if tc == c], np.float64).reshape(-1, 4)
                overlap = _iou_matrix(frac, mine)
                best = overlap.max(axis=1) if len(mine) else np.zeros(len(frac))
                y = np.where(best >= self.positive_iou, 1, np.where(best < self.negative_iou, 0, -1))
                y[np.array([fc == c for fc in fp_of])] = 0
                labels[c].append(y)
                target = np.full((len(frac), 4), np.nan)
                if len(mine):
                    target[y == 1] = _deltas(frac[y == 1], mine[overlap[y == 1].argmax(axis=1)])
                targets[c].append(target)
        x_all = np.concatenate(feats)
        heads = {}
        for c in self.concepts_:
            y, target = np.concatenate(labels[c]), np.concatenate(targets[c])
            use = y >= 0
            if y[use].min(initial=1) == 1 or y[use].max(initial=0) == 0:
                continue  # a fold without this concept, or without anything else
            # A least-squares scorer, class-balanced: closed form, so training stays in seconds
            # however many candidates; Platt scaling makes its scores probabilities afterwards.
            n_pos = (y[use] == 1).sum()
            weight = np.where(y[use] == 1, 0.5 / n_pos, 0.5 / (len(y[use]) - n_pos)) * len(y[use])
            scorer = make_pipeline(StandardScaler(), Ridge(alpha=self.alpha))
            scorer.fit(x_all[use], 2.0 * y[use] - 1.0, ridge__sample_weight=weight)
            w, b = _linear(scorer)
            pos = y == 1
            rw = rb = None
            if pos.sum() >= 5:
                rw, rb = _linear(make_pipeline(StandardScaler(), Ridge(alpha=self.ridge_alpha)).fit(x_all[pos], target[pos]))
            heads[c] = _Head(w[:, 0], float(b[0]), rw, rb)
        return heads

    def _raw_detections(self, projected: np.ndarray, heads: dict[str, _Head], projection: _Projection
                        ) -> list[tuple[str, Box, float]]:
        """(concept, box, head score) after refinement and suppression, best first per concept, from
        the integral image of the map ``projection`` made of the heads."""
        n_fine = projected.shape[0] - 1
        frac = _to_fraction(self.anchors_, n_fine)
        n = projected.shape[2]
        parts = _features(projected, self.anchors_)
        inside, centre, ring = parts[:, :n], parts[:, n:2 * n], parts[:, 2 * n:]
        out = []
        for (c, head), (s, r) in zip(heads.items(), projection.columns, strict=True):
            p = inside[:, s] + centre[:, s + 1] + ring[:, s + 2] + head.bias
            # The best candidates whatever their sign: a head fitted on few boxes scores
            # conservatively, and the calibration, not a fixed cut, decides what is shown.
            keep = np.argsort(-p, kind="stable")[:MAX_CANDIDATES]
            boxes, scores = frac[keep], p[keep]
            if r is not None:
                boxes = _apply_deltas(boxes, inside[keep, r:r + 4] + centre[keep, r + 4:r + 8] + ring[keep, r + 8:r + 12]
                                      + head.refine_bias)
            for box, score in fused_nms(boxes, scores, self.nms_iou, self.max_detections):
                top, left, bottom, right = (float(v) for v in box)
                if top < bottom and left < right:
                    out.append((c, Box(top, left, bottom, right), score))
        return out

    # -- calibration ----------------------------------------------------------------------------
    def _calibrate(self, oof: Sequence[Sequence[tuple[str, Box, float]]], truths: Truths) -> None:
        """Platt scaling of out-of-fold scores per concept, then the threshold that maximises F1."""
        for c, head in self.heads_.items():
            scores, hits = [], []
            for dets, image_truths in zip(oof, truths, strict=True):
                mine = [(b, s) for dc, b, s in dets if dc == c]
                scores += [s for _, s in mine]
                hits += _hits([b for b, _ in mine], [b for tc, b in image_truths if tc == c])
            y = np.array(hits)
            if len(y) >= 4 and 0 < y.sum() < len(y):
                platt = LogisticRegression(C=1.0).fit(np.array(scores)[:, None], y)
                head.platt = (float(platt.coef_[0, 0]), float(platt.intercept_[0]))
        self.thresholds_ = {}
        for c in self.heads_:
            values, hits, n_truths = [], [], 0
            for dets, image_truths in zip(oof, truths, strict=True):
                mine = [(b, s) for dc, b, s in dets if dc == c]
                values += [self._value(c, s) for _, s in mine]
                hits += _hits([b for b, _ in mine], [b for tc, b in image_truths if tc == c])
                n_truths += sum(tc == c for tc, _ in image_truths)
            self.thresholds_[c] = _best_threshold(np.array(values), np.array(hits, bool), n_truths)

    def _value(self, concept: str, score: float) -> float:
        a, b = self.heads_[concept].platt
        return float(1 / (1 + np.exp(-(a * score + b))))

    # -- predicting -----------------------------------------------------------------------------
    def predict(self, maps: Sequence[np.ndarray], *, all_candidates: bool = False) -> list[list[Detection]]:
        """Per image the detections at or above their concept's threshold (every kept candidate
        with ``all_candidates``), best first."""
        check_is_fitted(self, "heads_")
        out = []
        # Small products: on several BLAS threads their synchronisation costs more CPU than the
        # arithmetic, taken from the backbone's own threads (and other requests) on a busy machine.
        with _blas().limit(limits=1, user_api="blas"):
            for m in maps:
                if np.shape(m)[0] != self.grid_:
                    raise ValueError(f"feature map of {np.shape(m)[0]} cells a side, fitted on {self.grid_}")
                projected = _fine_integral(self.projection_(m), self.fine)
                dets = [Detection(c, b, self._value(c, s))
                        for c, b, s in self._raw_detections(projected, self.heads_, self.projection_)]
                out.append(sorted((d for d in dets if all_candidates or d.value >= self.thresholds_[d.concept]),
                                  key=lambda d: -d.value))
        return out


@functools.cache
def _blas() -> ThreadpoolController:
    """Found once: the first search for the loaded BLAS costs more than scoring an image."""
    return ThreadpoolController()


def _hits(boxes: Sequence[Box], truths: Sequence[Box]) -> list[bool]:
    """Greedy matching in the given (best-first) order: is each box a true positive at IoU 0.5?"""
    free = list(truths)
    out = []
    for b in boxes:
        best = max(range(len(free)), key=lambda k: iou(b, free[k]), default=None)
        if best is not None and iou(b, free[best]) >= MATCH_IOU:
            free.pop(best)
            out.append(True)
        else:
            out.append(False)
    return out


def to_bytes(detector: BoxDetector) -> bytes:
    """A fitted detector as numpy arrays and JSON (never a pickle)."""
    meta = {"format": FORMAT, "params": {k: list(v) if isinstance(v, tuple) else v
                                         for k, v in detector.get_params().items()},
            "concepts": list(detector.heads_), "grid": detector.grid_, "thresholds": detector.thresholds_,
            "platt": {c: list(h.platt) for c, h in detector.heads_.items()},
            "refines": [c for c, h in detector.heads_.items() if h.refine_weights is not None]}
    arrays = {"pca_mean": detector.pca_mean_, "pca_components": detector.pca_components_,
              "anchors": detector.anchors_,
              "weights": np.stack([h.weights for h in detector.heads_.values()]),
              "biases": np.array([h.bias for h in detector.heads_.values()], np.float32)}
    for k, h in enumerate(detector.heads_.values()):
        if h.refine_weights is not None and h.refine_bias is not None:
            arrays[f"refine_weights_{k}"], arrays[f"refine_bias_{k}"] = h.refine_weights, h.refine_bias
    return pack(meta, arrays)


def from_bytes(data: bytes) -> BoxDetector:
    meta, arrays = unpack(data, FORMAT)
    params = meta["params"]
    detector = BoxDetector(**{**params, "scales": tuple(params["scales"])})
    detector.pca_mean_, detector.pca_components_ = arrays["pca_mean"], arrays["pca_components"]
    detector.anchors_, detector.grid_ = arrays["anchors"], int(meta["grid"])
    detector.concepts_ = list(meta["concepts"])
    detector.thresholds_ = {c: float(t) for c, t in meta["thresholds"].items()}
    detector.heads_ = {}
    for k, c in enumerate(meta["concepts"]):
        refines = c in meta["refines"]
        detector.heads_[c] = _Head(arrays["weights"][k], float(arrays["biases"][k]),
                                   arrays[f"refine_weights_{k}"] if refines else None,
                                   arrays[f"refine_bias_{k}"] if refines else None,
                                   (float(meta["platt"][c][0]), float(meta["platt"][c][1])))
    detector._project()
    return detector


def _best_threshold(values: np.ndarray, hits: np.ndarray, n_truths: int, bounds: tuple[float, float] = (0.1, 0.8)) -> float:
    """The value cut that maximises F1 over out-of-fold detections; without any, the highest cut:
    a concept whose heads found nothing on images they did not see shows only its surest boxes."""
    if not len(values) or not n_truths:
        return bounds[1]
    best, best_f1 = 0.5, -1.0
    for t in np.clip(np.unique(values), *bounds):
        shown = values >= t
        tp = int((hits & shown).sum())
        f1 = 2 * tp / (shown.sum() + n_truths) if shown.sum() + n_truths else 0.0
        if f1 > best_f1 + 1e-9:
            best, best_f1 = float(t), f1
    return best
