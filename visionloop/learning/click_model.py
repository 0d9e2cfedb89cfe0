"""Search re-ranking learned from clicks, corrected for position bias.

Why: people click what they see, and they see the top of the list. Clicks are therefore biased
towards the current ranking; learning from them naively only entrenches it. The standard remedy
is inverse propensity scoring (IPS; Joachims, Swaminathan & Schnabel, "Unbiased Learning-to-Rank
with Biased Feedback", WSDM 2017): under the position-based model (PBM)

    P(click on d at rank r) = P(examine rank r) * P(d relevant) = theta_r * gamma_d,

a click at rank r counts ``1 / theta_r``, which makes the click-based loss an unbiased estimate of
the loss on true relevance.

Propensities: ``theta_r = r ** -eta`` (rank 1 always examined). ``eta`` is the maximum a
posteriori estimate of the PBM likelihood in which relevance is a logistic regression on the
hit's retrieval score — the model of regression-EM (Wang et al., "Position Bias Estimation for
Unbiased Learning to Rank in Personal Search", WSDM 2018), maximised directly rather than by EM
since it is smooth — under a Normal prior centred on 1 (the classic eye-tracking fit). Position
bias is only well identified when hits of similar score appear at different ranks (rankings
change, or randomised swaps); with little such evidence ``eta`` stays near its prior instead of
drifting.

Re-ranker: ``score(q, h) = sum_j w_j * q_j * h_j`` on unit vectors — with ``w = 1`` exactly the
cosine ranking the index already produces (training scales it by the dimension ``d`` so that
margins are of order one whatever the embedding size). ``w >= 0`` is learned by minimising the IPS-weighted
pairwise logistic loss (Propensity SVM-Rank's objective with a smooth loss): every clicked hit
should outscore each unclicked hit of the same search, the pairs of one click weighing
``1 / theta_r`` in total, plus ``penalty * ||w - 1||^2`` — shrinkage towards the current ranking
that matters less as clicks accumulate. A diagonal re-weighting generalises to queries never
seen. It is used only after ``min_sessions`` clicked searches, and only if it beats the identity
by the IPS-weighted DCG of the clicked hits, cross-fitted by query (each query's searches scored
by weights trained on other queries only) with a paired one-sided test ``z >= min_z`` over the
queries' mean gains; otherwise scores stay cosine. Folds by search would let a query searched
again sit on both sides: offline on the search benchmark's data that adopted weights that lowered
NDCG@10 on new queries, which folds by query refused (docs/benchmarks.md, docs/search-learning.md).

Fitted models serialise to numpy arrays + JSON, never a pickle.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from visionloop.learning.artifact import pack, unpack
from visionloop.learning.labels import Vote
from visionloop.learning.params import Range, validate

FORMAT = "visionloop.click_model/1"


@dataclass(frozen=True)
class Hit:
    input_id: str
    score: float
    vector: np.ndarray | None = None  # the hit's embedding, for the re-ranker


@dataclass(frozen=True)
class SearchSession:
    """One remembered search as shown (rank 1 first) and the 1-based ranks that were clicked."""

    search_id: Hashable
    kind: str  # 'concept', 'visual', 'metadata', ...
    key: str  # what was asked: concept id, query input id, metadata digest
    hits: Sequence[Hit]
    clicks: Sequence[int] = ()
    query_vector: np.ndarray | None = None
    end_user: str | None = None

    def clicked_ranks(self) -> list[int]:
        """Distinct clicked ranks (a retried click counts once), checked against the hits."""
        ranks: dict[int, None] = {}
        for r in self.clicks:
            if not 1 <= r <= len(self.hits):
                raise ValueError(f"search {self.search_id!r}: click at rank {r} outside 1..{len(self.hits)}")
            ranks.setdefault(int(r), None)
        return list(ranks)


def propensity(rank: int | np.ndarray, eta: float) -> np.ndarray:
    """Examination probability ``rank ** -eta`` of the position-based model."""
    return np.power(np.asarray(rank, dtype=np.float64), -eta)


def _unit(v: np.ndarray) -> npt.NDArray[np.float64]:
    v = np.asarray(v, dtype=np.float64)
    norms = np.linalg.norm(v, axis=-1, keepdims=True)
    unit: npt.NDArray[np.float64] = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)  # stubs: Any
    return unit


class ClickModel(BaseEstimator):  # type: ignore[misc]  # scikit-learn ships no type hints: BaseEstimator is Any
    """Position-bias propensities and an IPS-trained diagonal re-ranker; see the module docstring."""

    _constraints: ClassVar[dict[str, Range]] = {
        "max_rank": Range(2, integer=True),
        "eta_prior": Range(0),
        "eta_prior_sd": Range(0, open_low=True),
        "relevance_ridge": Range(0, open_low=True),
        "min_propensity": Range(0, 1, open_low=True),
        "penalty": Range(0, open_low=True),
        "min_sessions": Range(1, integer=True),
        "cv_folds": Range(0, integer=True),
        "min_z": Range(),
        "max_sessions": Range(1, integer=True),
        "max_iter": Range(1, integer=True),
    }

    def __init__(
        self,
        *,
        max_rank: int = 20,
        eta_prior: float = 1.0,
        eta_prior_sd: float = 0.5,
        relevance_ridge: float = 1.0,
        min_propensity: float = 0.05,
        penalty: float = 1.0,
        min_sessions: int = 50,
        cv_folds: int = 5,
        min_z: float = 1.64,
        max_sessions: int = 2000,
        max_iter: int = 200,
        random_state: int = 0,
    ) -> None:
        self.max_rank = max_rank
        self.eta_prior = eta_prior
        self.eta_prior_sd = eta_prior_sd
        self.relevance_ridge = relevance_ridge
        self.min_propensity = min_propensity
        self.penalty = penalty
        self.min_sessions = min_sessions
        self.cv_folds = cv_folds
        self.min_z = min_z
        self.max_sessions = max_sessions
        self.max_iter = max_iter
        self.random_state = random_state

    # -- position bias -------------------------------------------------------------------------

    def _fit_eta(self, sessions: Sequence[SearchSession]) -> tuple[float, int]:
        """MAP ``eta`` of the position-based model over the impressions at ranks 1..max_rank.

        Relevance is a logistic regression on the hit's retrieval score (an intercept and a slope
        per query kind), so evidence is shared across queries: a hit's score says how likely it
        is relevant wherever it is shown, and what is left of the click rate's fall with rank is
        position bias. This is the likelihood regression-EM climbs; with a logistic relevance
        model it is smooth in (eta, beta) and quasi-Newton maximises it directly, in far fewer
        iterations than EM. Returns (eta, optimiser iterations).
        """
        kinds: dict[str, int] = {}
        kind, score, rank, click = [], [], [], []
        for s in sessions:
            clicked = set(s.clicked_ranks())
            for r, hit in enumerate(s.hits[: self.max_rank], start=1):
                kind.append(kinds.setdefault(s.kind, len(kinds)))
                score.append(float(hit.score))
                rank.append(r)
                click.append(r in clicked)
        if not any(click):
            return float(self.eta_prior), 0
        kind_a, click_a, score_a = np.array(kind), np.array(click, dtype=float), np.array(score)
        log_rank = np.log(np.array(rank, dtype=float))
        X = np.zeros((len(click), 2 * len(kinds)))
        for k in range(len(kinds)):
            rows = kind_a == k
            spread = score_a[rows].std() or 1.0
            X[rows, 2 * k] = 1.0
            X[rows, 2 * k + 1] = (score_a[rows] - score_a[rows].mean()) / spread
        ridge, prior, sd = self.relevance_ridge, self.eta_prior, self.eta_prior_sd

        def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
            eta, beta = params[0], params[1:]
            z = X @ beta
            log_g = -np.logaddexp(0.0, -z)  # log sigmoid
            log_p = np.minimum(-eta * log_rank + log_g, -1e-12)  # log P(click)
            log_not = np.log1p(-np.exp(log_p))
            nll = -(click_a @ log_p + (1 - click_a) @ log_not)
            u = click_a - (1 - click_a) * np.exp(log_p - log_not)  # d loglik / d log p
            g = np.exp(log_g)
            value = nll + 0.5 * ((eta - prior) / sd) ** 2 + 0.5 * ridge * beta @ beta
            grad_eta = u @ log_rank + (eta - prior) / sd**2
            grad_beta = -X.T @ (u * (1 - g)) + ridge * beta
            return float(value), np.r_[grad_eta, grad_beta]

        start = np.zeros(1 + X.shape[1])
        start[0] = prior
        result = minimize(objective, start, jac=True, method="L-BFGS-B",
                          bounds=[(0.0, 5.0)] + [(None, None)] * X.shape[1],
                          options={"maxiter": self.max_iter})
        return float(result.x[0]), int(result.nit)

    # -- re-ranker -----------------------------------------------------------------------------

    def _training_data(self, sessions: Sequence[SearchSession], eta: float, scale: float) -> _Pairs | None:
        blocks, pc, pn, alpha, session_of_hit, rank_of_hit, click_of_hit = [], [], [], [], [], [], []
        offset = 0
        for k, s in enumerate(sessions):
            hits = s.hits[: self.max_rank]
            q = _unit(np.asarray(s.query_vector).ravel())
            features = scale * (q[None, :] * _unit(np.stack([np.asarray(h.vector).ravel() for h in hits])))
            clicked = [r for r in s.clicked_ranks() if r <= len(hits)]
            unclicked = [r for r in range(1, len(hits) + 1) if r not in clicked]
            for r in clicked:
                ips = 1.0 / max(float(propensity(r, eta)), self.min_propensity)
                for n in unclicked:
                    pc.append(offset + r - 1)
                    pn.append(offset + n - 1)
                    alpha.append(ips / len(unclicked))
            blocks.append(features.astype(np.float32))
            session_of_hit += [k] * len(hits)
            rank_of_hit += list(range(1, len(hits) + 1))
            click_of_hit += [r in clicked for r in range(1, len(hits) + 1)]
            offset += len(hits)
        if not pc:
            return None
        return _Pairs(np.vstack(blocks), np.array(pc), np.array(pn), np.array(alpha),
                      np.array(session_of_hit), np.array(rank_of_hit), np.array(click_of_hit))

    def _fit_weights(self, data: _Pairs) -> np.ndarray:
        d = data.features.shape[1]
        F = data.features  # float32: the products stay float32, the sums float64

        def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
            s = (F @ w.astype(np.float32)).astype(np.float64)
            margin = s[data.clicked] - s[data.other]
            loss = data.alpha @ np.logaddexp(0.0, -margin) + self.penalty * np.sum((w - 1) ** 2)
            coefficient = -data.alpha * 0.5 * (1 - np.tanh(0.5 * margin))  # d loss / d margin
            per_hit = (np.bincount(data.clicked, coefficient, minlength=len(s))
                       - np.bincount(data.other, coefficient, minlength=len(s)))
            gradient = (F.T @ per_hit.astype(np.float32)).astype(np.float64)
            return float(loss), gradient + 2 * self.penalty * (w - 1)

        result = minimize(objective, np.ones(d), jac=True, method="L-BFGS-B", bounds=[(0.0, None)] * d,
                          options={"maxiter": 500})
        weights: np.ndarray = result.x  # scipy's OptimizeResult is untyped
        return weights

    def _ips_dcg(self, data: _Pairs, w: np.ndarray, eta: float) -> np.ndarray:
        """Per search, the IPS-weighted DCG of its clicked hits when re-ranked by ``w``.

        Under the PBM its mean is an unbiased estimate of the DCG of the relevant hits.
        """
        scores = data.features @ w.astype(np.float32)
        sessions = np.unique(data.session)
        out = np.zeros(len(sessions))
        for k, session in enumerate(sessions):
            rows = np.flatnonzero(data.session == session)
            order = np.argsort(-scores[rows], kind="stable")
            new_rank = np.empty(len(rows), dtype=int)
            new_rank[order] = np.arange(1, len(rows) + 1)
            for j in np.flatnonzero(data.click[rows]):
                ips = 1.0 / max(float(propensity(data.rank[rows][j], eta)), self.min_propensity)
                out[k] += ips / math.log2(1 + new_rank[j])
        return out

    def fit(self, sessions: Iterable[SearchSession]) -> ClickModel:
        """Estimate position bias from all sessions, then the re-ranker from clicked ones.

        Sessions come oldest first; the re-ranker keeps the latest ``max_sessions`` clicked ones
        (its memory is sessions x hits x d float32).
        """
        validate(self.get_params(), self._constraints)
        if self.cv_folds == 1:
            raise ValueError("cv_folds must be 0 (adopt without validation) or >= 2, got 1")
        sessions = list(sessions)
        with threadpool_limits(limits=1, user_api="blas"):
            self.eta_, self.fit_iterations_ = self._fit_eta(sessions)
            self.propensities_ = propensity(np.arange(1, self.max_rank + 1), self.eta_)
            self.n_sessions_ = len(sessions)
            usable = [s for s in sessions if s.clicked_ranks() and s.query_vector is not None
                      and all(h.vector is not None for h in s.hits[: self.max_rank])]
            usable = usable[-self.max_sessions:]  # the most recent: memory is sessions x hits x d
            self.n_click_sessions_ = len(usable)
            self.weights_ = None
            self.validation_ = None
            self.reranking_ = False
            if len(usable) < self.min_sessions:
                self.reason_ = f"{len(usable)} clicked searches with vectors, fewer than {self.min_sessions}"
                return self
            d = _check_dimensions(usable, self.max_rank)
            self.n_features_in_ = d
            scale = float(d)  # so one unit of a weight moves a margin by about one logit, any d
            everything = self._training_data(usable, self.eta_, scale)
            if everything is None:
                self.reason_ = "no clicked hit had an unclicked neighbour to compare with"
                return self
            if self.cv_folds:
                # Cross-fitting: every query is judged by weights not trained on any of its
                # searches, and a paired one-sided test over the queries' mean gains decides (the
                # searches of one query are not independent evidence); adopt only a clear gain.
                fold = _query_folds(usable, self.cv_folds, self.random_state)
                before, after, keys = [], [], []
                for k in range(self.cv_folds):
                    tested = np.flatnonzero(fold == k)
                    train = self._training_data([usable[i] for i in np.flatnonzero(fold != k)], self.eta_, scale)
                    test = self._training_data([usable[i] for i in tested], self.eta_, scale)
                    if train is None or test is None:
                        continue
                    w = self._fit_weights(train)
                    before.append(self._ips_dcg(test, np.ones(d), self.eta_))
                    after.append(self._ips_dcg(test, w, self.eta_))
                    keys += [str(usable[i].key) for i in tested]
                before_a, after_a = np.concatenate(before or [np.zeros(0)]), np.concatenate(after or [np.zeros(0)])
                z = _paired_z(_mean_by(keys, after_a - before_a))
                self.validation_ = {"identity": float(before_a.mean()) if before else None,
                                    "learned": float(after_a.mean()) if after else None,
                                    "z": z, "n_sessions": len(before_a), "n_queries": len(set(keys))}
                if not z >= self.min_z:
                    self.reason_ = (f"cross-fitted IPS-DCG does not clearly beat the current ranking "
                                    f"(gain z = {z:.2f} < {self.min_z})")
                    return self
            self.weights_ = self._fit_weights(everything)
            self.reranking_ = True
            self.reason_ = f"learned from {len(usable)} clicked searches"
        return self

    def score(self, query_vector: Any, hit_vectors: Any) -> np.ndarray:
        """Re-ranking scores of ``hit_vectors`` (n, d) for the query: higher ranks first.

        Before there is enough evidence (``reranking_`` False) this is the cosine similarity.
        """
        check_is_fitted(self, "eta_")
        q = _unit(np.asarray(query_vector, dtype=np.float64).ravel())
        H = _unit(np.atleast_2d(np.asarray(hit_vectors, dtype=np.float64)))
        if H.shape[1] != q.shape[0]:
            raise ValueError(f"hit vectors have {H.shape[1]} dimensions, the query {q.shape[0]}")
        if not self.reranking_:
            return H @ q
        if q.shape[0] != self.n_features_in_:
            raise ValueError(f"vectors have {q.shape[0]} dimensions, the model was fitted on {self.n_features_in_}")
        weights = cast(npt.NDArray[np.float64], self.weights_)  # fit and from_bytes set them whenever reranking_
        return (H * q[None, :]) @ weights  # the weighted cosine

    def to_bytes(self) -> bytes:
        check_is_fitted(self, "eta_")
        meta = {"format": FORMAT, "params": self.get_params(), "eta": self.eta_,
                "fit_iterations": self.fit_iterations_, "n_sessions": self.n_sessions_,
                "n_click_sessions": self.n_click_sessions_, "reranking": self.reranking_,
                "reason": self.reason_, "validation": self.validation_,
                "n_features_in": getattr(self, "n_features_in_", None)}
        return pack(meta, {} if self.weights_ is None else {"weights": self.weights_})

    @classmethod
    def from_bytes(cls, data: bytes) -> ClickModel:
        meta, arrays = unpack(data, FORMAT)
        weights = arrays.get("weights")
        model = cls(**meta["params"])
        model.eta_ = float(meta["eta"])
        model.fit_iterations_ = int(meta["fit_iterations"])
        model.propensities_ = propensity(np.arange(1, model.max_rank + 1), model.eta_)
        model.n_sessions_ = int(meta["n_sessions"])
        model.n_click_sessions_ = int(meta["n_click_sessions"])
        model.reranking_ = bool(meta["reranking"])
        model.reason_ = meta["reason"]
        model.validation_ = meta["validation"]
        model.weights_ = weights
        if meta["n_features_in"] is not None:
            model.n_features_in_ = int(meta["n_features_in"])
        return model


def _query_folds(sessions: Sequence[SearchSession], folds: int, seed: int) -> np.ndarray:
    """A fold per session, the same for every search of one query (``key``).

    Why: a query searched again is the same query; with its other searches on the training side,
    a re-ranker that memorises it looks like one that generalises, and would be adopted for a
    gain that new queries never see.
    """
    keys = sorted({str(s.key) for s in sessions})
    of_key = dict(zip(keys, np.random.default_rng(seed).permutation(len(keys)) % folds, strict=True))
    return np.array([of_key[str(s.key)] for s in sessions], dtype=int)


def _mean_by(keys: Sequence[str], values: np.ndarray) -> np.ndarray:
    """The mean of ``values`` per distinct key (first-seen order)."""
    groups: dict[str, list[float]] = {}
    for key, value in zip(keys, values.tolist(), strict=True):
        groups.setdefault(key, []).append(value)
    return np.array([np.mean(v) for v in groups.values()])


def _paired_z(gain: np.ndarray) -> float:
    """The mean gain over its standard error; 0 when it cannot be told from noise (n < 2, sd 0)."""
    if len(gain) < 2 or gain.std(ddof=1) == 0:
        return 0.0
    return float(gain.mean() / (gain.std(ddof=1) / math.sqrt(len(gain))))


def _check_dimensions(sessions: Sequence[SearchSession], max_rank: int) -> int:
    d = len(np.asarray(sessions[0].query_vector).ravel())
    for s in sessions:
        sizes = {len(np.asarray(h.vector).ravel()) for h in s.hits[:max_rank]}
        sizes.add(len(np.asarray(s.query_vector).ravel()))
        if sizes != {d}:
            raise ValueError(f"search {s.search_id!r}: vectors of {sorted(sizes)} dimensions, expected {d}")
    return d


@dataclass(frozen=True)
class _Pairs:
    features: np.ndarray  # (hits, d): scale * q * h, float32
    clicked: np.ndarray  # (pairs,) row of the clicked hit
    other: np.ndarray  # (pairs,) row of the unclicked hit it should outscore
    alpha: np.ndarray  # (pairs,) IPS weight
    session: np.ndarray  # (hits,)
    rank: np.ndarray  # (hits,) rank shown
    click: np.ndarray  # (hits,) bool


def clicks_as_weak_labels(sessions: Iterable[SearchSession], *, weight: float = 0.2,
                          kinds: Sequence[str] = ("concept",)) -> list[Vote]:
    """Positive votes ``((input_id, concept), end_user)`` from clicks on concept searches.

    A click says the hit looked right for the concept searched, at low weight: people also click
    out of curiosity. A skipped hit is no vote at all — it may never have been looked at.
    """
    votes = []
    for s in sessions:
        if s.kind not in kinds:
            continue
        for r in s.clicked_ranks():
            votes.append(Vote((s.hits[r - 1].input_id, s.key), s.end_user, True, weight))
    return votes
