"""Concept heads learned from feedback on stored embeddings, blended with the base model.

Why: the base model's embedding of every input is stored, so a new model version can learn a
concept from labelled inputs in seconds on a CPU, without touching the image pipeline. Each
concept gets its own logistic regression (one-vs-rest, multi-label: concepts are not exclusive),
with balanced class weights because feedback is lopsided, C chosen by a small stratified CV when
both classes have enough labels, and sigmoid (Platt) calibration through
``CalibratedClassifierCV`` once there are enough labels for held-out folds — blending with the base
model and thresholds both assume probabilities that mean what they say. A calibration that is not
increasing in the margin is refused (the head keeps the regression's own probability).

How much say a head gets against the base model's score is set per concept after fitting
(:meth:`ConceptHeads.with_shares`, chosen from cross-validated evidence by
:mod:`visionloop.learning.crossval`); the evidence prior ``n / (n + k)`` stands where nothing was
chosen.

Few labels are where a regression on 1280 features overfits, and where a prototype head
(:mod:`visionloop.learning.prototype`) does better; the two are blended in log-odds, the prototype
weighing ``k / (n + k)`` at evidence ``n`` (``k = prototype_evidence``, 100): it leads at ten
examples and fades once hundreds arrive.

A version is an immutable artifact: :meth:`ConceptHeads.to_bytes` stores coefficients,
intercepts and the calibration ``a, b`` as numpy arrays plus JSON metadata, never a pickle, so
loading a version cannot execute code. Standardisation, Platt's calibration and the prototype are
folded into the coefficients (``a, b = -1, 0``; older artifacts keep their own), so applying a
head is one matrix product and one sigmoid.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, Protocol, cast

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.utils.validation import check_array, check_is_fitted
from threadpoolctl import threadpool_limits

from visionloop.learning.artifact import pack, unpack
from visionloop.learning.params import Range, validate
from visionloop.learning.prototype import fit_prototype

FORMAT = "visionloop.concept_heads/1"
ARRAYS = ("coef_", "intercept_", "calibration_", "n_labels_", "n_positives_", "C_", "calibrated_", "share_")


class _Head(NamedTuple):
    coef: np.ndarray  # on raw (unstandardised) features
    intercept: float
    a: float  # Platt calibration: p = 1 / (1 + exp(a * margin + b)); (-1, 0) once folded into the margin
    b: float
    n_labels: int
    n_positives: int
    C: float
    calibrated: bool


class _LabelLike(Protocol):
    item: Hashable
    value: bool
    confidence: float


class ConceptHeads(BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no type hints: BaseEstimator is Any
    """One calibrated logistic regression per concept with enough labels (multi-label, one-vs-rest).

    ``fit(X, Y)`` takes embeddings ``X`` (n, d) and labels ``Y`` (n, c): 1 positive, 0 negative,
    NaN unlabelled (ignored for that concept). Concepts with fewer than ``min_positives`` positive
    or ``min_negatives`` negative labelled inputs are not trained and are listed in ``skipped_``
    with the reason. ``predict_proba`` returns one column per trained concept, in ``concepts_``
    order.
    """

    _constraints: ClassVar[dict[str, Range]] = {
        "min_positives": Range(1, integer=True),
        "min_negatives": Range(1, integer=True),
        "C": Range(0, open_low=True),
        "cv_folds": Range(2, integer=True),
        "min_cv_per_class": Range(2, integer=True),
        "min_calibration": Range(2, integer=True),
        "max_iter": Range(1, integer=True),
        "prototype_evidence": Range(0),
    }

    def __init__(
        self,
        *,
        min_positives: int = 5,
        min_negatives: int = 5,
        C: float = 1.0,
        Cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
        cv_folds: int = 3,
        min_cv_per_class: int = 10,
        min_calibration: int = 30,
        max_iter: int = 1000,
        prototype_evidence: float = 100.0,
        random_state: int = 0,
    ) -> None:
        self.min_positives = min_positives
        self.min_negatives = min_negatives
        self.C = C
        self.Cs = Cs
        self.cv_folds = cv_folds
        self.min_cv_per_class = min_cv_per_class
        self.min_calibration = min_calibration
        self.max_iter = max_iter
        self.prototype_evidence = prototype_evidence
        self.random_state = random_state

    def _check_params(self) -> None:
        validate(self.get_params(), self._constraints)
        if not self.Cs or any(not (isinstance(c, int | float) and c > 0) for c in self.Cs):
            raise ValueError(f"Cs must be a non-empty list of positive numbers, got {self.Cs!r}")

    def fit(self, X: Any, Y: Any, sample_weight: Any = None,
            concepts: Sequence[str] | None = None) -> ConceptHeads:
        """Learn a head per concept. ``sample_weight`` is (n,) or per label (n, c)."""
        self._check_params()
        X = check_array(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
            raise ValueError(f"Y must have shape (n_samples, n_concepts) with n_samples={X.shape[0]}, "
                             f"got {Y.shape}")
        labelled = ~np.isnan(Y)
        if not np.isin(Y[labelled], (0.0, 1.0)).all():
            raise ValueError("Y must hold 1 (positive), 0 (negative) or NaN (unlabelled)")
        W = np.ones_like(Y) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if W.ndim == 1:
            W = np.repeat(W[:, None], Y.shape[1], axis=1)
        if W.shape != Y.shape or not np.isfinite(W).all() or (W < 0).any():
            raise ValueError(f"sample_weight must be non-negative, shape {(X.shape[0],)} or {Y.shape}")
        names = [str(j) for j in range(Y.shape[1])] if concepts is None else [str(c) for c in concepts]
        if len(names) != Y.shape[1] or len(set(names)) != len(names):
            raise ValueError(f"concepts must be {Y.shape[1]} distinct names, got {len(names)}")

        mean = X.mean(axis=0)
        scale = X.std(axis=0)
        scale[scale == 0] = 1.0
        Xs = (X - mean) / scale

        fitted: dict[str, _Head] = {}
        skipped: dict[str, str] = {}
        # Each concept is a small problem: multi-threaded BLAS only adds synchronisation (measured
        # much slower on a loaded 2-core machine), so fit on one BLAS thread.
        with threadpool_limits(limits=1, user_api="blas"):
            for j, name in enumerate(names):
                head = self._fit_concept(X, Xs, Y[:, j], W[:, j], labelled[:, j], mean, scale)
                if isinstance(head, str):
                    skipped[name] = head
                else:
                    fitted[name] = head

        d = X.shape[1]
        heads = list(fitted.values())
        self.n_features_in_ = d
        self.concepts_ = list(fitted)
        self.coef_ = np.array([h.coef for h in heads], dtype=np.float64).reshape(len(heads), d)
        self.intercept_ = np.array([h.intercept for h in heads], dtype=np.float64)
        self.calibration_ = np.array([(h.a, h.b) for h in heads], dtype=np.float64).reshape(-1, 2)
        self.n_labels_ = np.array([h.n_labels for h in heads], dtype=np.int64)
        self.n_positives_ = np.array([h.n_positives for h in heads], dtype=np.int64)
        self.C_ = np.array([h.C for h in heads], dtype=np.float64)
        self.calibrated_ = np.array([h.calibrated for h in heads], dtype=bool)
        self.share_ = np.full(len(heads), np.nan)  # against the base model: the evidence prior until chosen
        self.skipped_ = skipped
        return self

    def _fit_concept(self, X: np.ndarray, Xs: np.ndarray, y_all: np.ndarray, w_all: np.ndarray,
                     labelled: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> _Head | str:
        """The fitted figures of one concept, or why it was skipped."""
        rows = labelled & (w_all > 0)
        y, w = y_all[rows], w_all[rows]
        n_pos, n_neg = int(y.sum()), int((1 - y).sum())
        if n_pos < self.min_positives:
            return f"{n_pos} positive labels, fewer than {self.min_positives}"
        if n_neg < self.min_negatives:
            return f"{n_neg} negative labels, fewer than {self.min_negatives}"
        coef, intercept, a, b, C, calibrated = self._fit_one(Xs[rows], y, w)
        # Fold the standardisation in: w.(x - m)/s + b0 = (w/s).x + (b0 - w.(m/s)), then Platt's
        # (a, b): the regression's calibrated log-odds are -(a * margin + b), linear in x.
        coef = coef / scale
        coef, intercept = -a * coef, -a * (intercept - float(coef @ mean)) - b
        prototype = fit_prototype(X[rows], y, w, background=mean)
        if prototype is not None:  # log-odds blended by evidence
            n = 2 * min(n_pos, n_neg)  # >= 2: both classes passed their minimum
            share = n / (n + self.prototype_evidence)
            coef = share * coef + (1 - share) * prototype.coef
            intercept = share * intercept + (1 - share) * prototype.intercept
        return _Head(coef, intercept, -1.0, 0.0, n_pos + n_neg, n_pos, C, calibrated)

    def _fit_one(self, X: np.ndarray, y: np.ndarray,
                 w: np.ndarray) -> tuple[np.ndarray, float, float, float, float, bool]:
        """(coef, intercept, a, b, C, calibrated) for one concept on standardised features."""
        n_pos, n_neg = int(y.sum()), int((1 - y).sum())
        base = LogisticRegression(C=self.C, class_weight="balanced", max_iter=self.max_iter)
        folds = StratifiedKFold(self.cv_folds, shuffle=True, random_state=self.random_state)
        C = float(self.C)
        if len(self.Cs) == 1:  # chosen already (cross-validation folds reuse the full fit's choice)
            C = float(self.Cs[0])
        elif min(n_pos, n_neg) >= max(self.min_cv_per_class, self.cv_folds):
            search = GridSearchCV(base, {"C": list(self.Cs)}, cv=folds, scoring="neg_log_loss")
            C = float(search.fit(X, y, sample_weight=w).best_params_["C"])
        model = clone(base).set_params(C=C)
        if len(y) >= self.min_calibration and min(n_pos, n_neg) >= self.cv_folds:
            calibrated = CalibratedClassifierCV(model, method="sigmoid", cv=folds, ensemble=False)
            calibrated.fit(X, y, sample_weight=w)
            inner = calibrated.calibrated_classifiers_[0]
            sigmoid = inner.calibrators[0]
            lr = inner.estimator  # fitted on every label (ensemble=False)
            if sigmoid.a_ < 0:
                return lr.coef_[0].copy(), float(lr.intercept_[0]), float(sigmoid.a_), float(sigmoid.b_), C, True
            # A slope a >= 0 maps higher margins to lower (or equal) probabilities: on a few noisy
            # labels the held-out margins can anti-correlate with them, and such a fit would invert
            # the head. Then the regression's own probability is the better-founded one.
        else:
            lr = model.fit(X, y, sample_weight=w)
        # Platt's 1 / (1 + exp(a f + b)) with a = -1, b = 0 is the regression's own probability.
        return lr.coef_[0].copy(), float(lr.intercept_[0]), -1.0, 0.0, C, False

    def decision_function(self, X: Any) -> np.ndarray:
        """The heads' margins, (n, len(concepts_)): log-odds once ``calibration_`` is (-1, 0)."""
        check_is_fitted(self, "coef_")
        X = check_array(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the heads were fitted on {self.n_features_in_}")
        margin: np.ndarray = X @ self.coef_.T + self.intercept_  # check_array is untyped: Any
        return margin

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated probability of each trained concept, (n, len(concepts_))."""
        margin = self.decision_function(X)
        a, b = self.calibration_[:, 0], self.calibration_[:, 1]
        proba: np.ndarray = 1.0 / (1.0 + np.exp(np.clip(a * margin + b, -500, 500)))  # numpy's stubs: Any
        return proba

    def predict(self, X: Any) -> np.ndarray:
        """Multi-label indicator matrix: 1 where the probability is at least 0.5."""
        return (self.predict_proba(X) >= 0.5).astype(np.int64)

    def scores(self, X: Any) -> list[dict[str, float]]:
        """Per input, concept id -> probability (the shape :func:`combine` takes)."""
        return [dict(zip(self.concepts_, map(float, row), strict=True)) for row in self.predict_proba(X)]

    def evidence(self) -> dict[str, int]:
        """Concept id -> effective number of labels behind its head (for :func:`combine`).

        Twice the smaller class: a head is as good as its rarer side, so 5 positives among 500
        negatives (e.g. implicit ones) count as 10 labels, not 505.
        """
        check_is_fitted(self, "coef_")
        balanced = 2 * np.minimum(self.n_positives_, self.n_labels_ - self.n_positives_)
        return dict(zip(self.concepts_, map(int, balanced), strict=True))

    def with_shares(self, shares: Mapping[str, float | None]) -> ConceptHeads:
        """Set each head's share against the base model, chosen from cross-validated evidence
        (:func:`visionloop.learning.crossval.base_shares`); a concept absent or None keeps the prior."""
        check_is_fitted(self, "coef_")
        chosen = [shares.get(c) for c in self.concepts_]
        self.share_ = np.array([np.nan if s is None else float(s) for s in chosen], dtype=np.float64)
        return self

    def shares(self, k: float) -> dict[str, float]:
        """Concept id -> the head's share against the base model (for :func:`combine`): the one chosen
        from cross-validated evidence, else the evidence prior ``n / (n + k)``."""
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        prior = {c: n / (n + k) for c, n in self.evidence().items()}
        return {c: prior[c] if np.isnan(s) else float(s) for c, s in zip(self.concepts_, self.share_, strict=True)}

    def to_bytes(self) -> bytes:
        """The fitted heads as an ``.npz`` of arrays plus JSON metadata; no pickle."""
        check_is_fitted(self, "coef_")
        meta = {"format": FORMAT, "params": {**self.get_params(), "Cs": list(self.Cs)},
                "concepts": self.concepts_, "skipped": self.skipped_, "n_features_in": self.n_features_in_}
        return pack(meta, {name.rstrip("_"): getattr(self, name) for name in ARRAYS})

    @classmethod
    def from_bytes(cls, data: bytes) -> ConceptHeads:
        meta, arrays = unpack(data, FORMAT)
        params = meta["params"]
        heads = cls(**{**params, "Cs": tuple(params["Cs"])})
        for name in ARRAYS:
            if name.rstrip("_") in arrays:
                setattr(heads, name, arrays[name.rstrip("_")])
        if "share" not in arrays:  # written before shares were chosen: the evidence prior
            heads.share_ = np.full(len(meta["concepts"]), np.nan)
        heads.concepts_ = list(meta["concepts"])
        heads.skipped_ = dict(meta["skipped"])
        heads.n_features_in_ = int(meta["n_features_in"])
        return heads


def combine(base_scores: Mapping[str, float], head_scores: Mapping[str, float],
            shares: Mapping[str, float]) -> dict[str, float]:
    """Blend the base model's score with the head's probability, the head weighing its share.

    ``shares`` (:meth:`ConceptHeads.shares`) gives each head's say against the base model; a head
    without one gets none. A concept only the base model knows keeps its score; one only the head
    knows (a new concept) uses the head alone.
    """
    out = dict(base_scores)
    for concept, head in head_scores.items():
        if concept in base_scores:
            w = min(1.0, max(0.0, float(shares.get(concept, 0.0))))
            out[concept] = (1 - w) * float(base_scores[concept]) + w * float(head)
        else:
            out[concept] = float(head)
    return out


def label_matrix(
    labels: Iterable[_LabelLike],
    rows: Sequence[Hashable],
    concepts: Sequence[str] | None = None,
    *,
    min_confidence: float = 0.7,
    implicit_negative_weight: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(Y, W, concepts)`` for :meth:`ConceptHeads.fit` from resolved labels.

    Labels are :class:`visionloop.learning.labels.Label` with ``item = (row key, concept)``;
    those below ``min_confidence`` are left out. Applications often only say what an image *is*:
    an input positive for some concept and unlabelled for another counts as a negative for it
    with ``implicit_negative_weight`` (0 turns this off), as custom concepts need negatives.
    """
    index = {row: i for i, row in enumerate(rows)}
    keyed = ((cast("tuple[Hashable, str]", lab.item), lab) for lab in labels)  # as documented above
    kept = [(item, lab) for item, lab in keyed if lab.confidence >= min_confidence and item[0] in index]
    names = sorted({concept for (_, concept), _ in kept}) if concepts is None else list(concepts)
    column = {c: j for j, c in enumerate(names)}
    Y = np.full((len(rows), len(names)), np.nan)
    W = np.zeros_like(Y)
    for (row, concept), lab in kept:
        if concept in column:
            Y[index[row], column[concept]] = float(lab.value)
            W[index[row], column[concept]] = 1.0
    if implicit_negative_weight > 0 and names:
        has_positive = (Y == 1).any(axis=1)
        implicit = np.isnan(Y) & has_positive[:, None]
        Y[implicit] = 0.0
        W[implicit] = implicit_negative_weight
    return Y, W, names
