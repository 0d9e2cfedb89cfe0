"""Search re-ranking learned from clicks (``click_model`` versions of the embedding model), and search metrics.

Sessions come from the app's remembered searches (the latest :data:`MAX_SEARCHES`) whose hits start
at rank 1: the hits as shown (rank, input, score) and the ranks clicked (search_click events; a
retried click counts once). A search by visual similarity also gets its query vector and each hit's
unit embedding, from stored features: a query input's; a query image's by its digest (search keeps
the features of query images); a query URL's through an input added from that URL, else none —
URLs are never fetched again, and a session without vectors only informs the position bias.

Training fits :class:`~visionloop.learning.click_model.ClickModel` (PBM propensities, IPS-trained
diagonal re-ranker, adoption test cross-fitted by query: it re-ranks only after ``min_sessions``
clicked searches and a clear gain) on the earlier sessions. Champion and challenger are then
scored on the later ones by the IPS-weighted DCG of the clicked hits under each one's ranking,
queries the training saw and new queries apart (:mod:`visionloop.learning.search_gate`): the
challenger replaces the champion when neither falls by more than 1% and either rises. A
version the click model did not adopt is kept (its position-bias estimate is informative) and never
promoted. The re-ranking applies to the app's visual searches only (search.py re-ranks the top
candidates with the active version's ``rerank``).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from visionloop import errors
from visionloop.inference.predictions import Prediction
from visionloop.inference.predictors import Predictor
from visionloop.learning.click_model import ClickModel, Hit, SearchSession, propensity
from visionloop.learning.estimates import Estimate, interval, resample_counts
from visionloop.learning.metrics_search import SearchRecord, evaluate_searches
from visionloop.learning.promotion import Decision
from visionloop.learning.search_gate import gate, time_split
from visionloop.learning.vocabulary import EventType
from visionloop.services.feedback.log import as_utc
from visionloop.services.images import decode_base64
from visionloop.services.training.concept_training import InsufficientData, estimate_json
from visionloop.services.training.data import features
from visionloop.store.blobs import BlobStore, digest_of
from visionloop.store.db import Database
from visionloop.store.tables import (
    FeedbackEvent,
    Input,
    Model,
    ModelVersion,
    Search,
    SearchHit,
    input_at_url,
    input_has_image,
)

CLICK_KIND = "click_model"
MAX_SEARCHES = 10_000  # the latest searches a training or the metrics read
PRIMARY = "ips_dcg"
MIN_COUNT = 10  # clicked later sessions below which a figure is too thin to decide on
Progress = Callable[[str], None]
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ClickRanker:
    """An embedding version that re-ranks visual search: the base's embeddings, plus :meth:`rerank`."""

    def __init__(self, base: Predictor, model: ClickModel) -> None:
        self.base = base
        self.model = model

    def predict(self, images: Sequence[Any]) -> list[Prediction]:
        return self.base.predict(images)

    def rerank(self, query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """Scores of the hits' unit vectors (n, d) for the query: higher ranks first."""
        return self.model.score(query, vectors)

    @property
    def eta(self) -> float:
        """The position bias estimated from the app's clicks, for the click memory's propensities."""
        return self.model.eta_


# -- the log as sessions ----------------------------------------------------------------------------
def query_refs(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """The visual terms of a remembered search body: ("input", id), ("base64", data) or ("url", url)."""
    refs = []
    for term in ((raw or {}).get("query") or {}).get("ands") or []:
        query_input = ((term or {}).get("output") or {}).get("input") or {}
        image = ((query_input.get("data") or {}).get("image")) or {}
        if image.get("base64"):
            refs.append(("base64", str(image["base64"])))
        elif image.get("url"):
            refs.append(("url", str(image["url"])))
        elif query_input.get("id"):
            refs.append(("input", str(query_input["id"])))
    return refs


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def _chunks(items: Sequence[Any], size: int = 500) -> list[Sequence[Any]]:
    return [items[k:k + size] for k in range(0, len(items), size)]


def _query(s: Session, app_id: str, refs: list[tuple[str, str]]) -> tuple[str, np.ndarray | None]:
    """The query's key (what tells seen queries from new ones) and its vector (None when not recoverable)."""
    digests, keys = [], []
    for kind, ref in refs:
        if kind == "input":
            keys.append(f"input:{ref}")
            digests.append(s.scalar(select(Input.digest).where(Input.app_id == app_id, Input.id == ref)))
        elif kind == "base64":
            try:
                digest = digest_of(decode_base64(ref))
            except errors.ApiError:
                digest = None
            keys.append(f"image:{digest}")
            digests.append(digest)
        else:
            keys.append(f"url:{ref}")
            digests.append(s.scalar(select(Input.digest).where(Input.app_id == app_id, input_at_url(ref),
                                                               input_has_image()).limit(1)))
    found = features(s, [d for d in digests if d]) if all(digests) else {}
    vector = (np.mean([_unit(found[d]) for d in digests], axis=0)
              if digests and all(d in found for d in digests) else None)
    return "+".join(sorted(keys)), vector


@dataclasses.dataclass(frozen=True)
class SearchLog:
    sessions: list[SearchSession]  # oldest first; searches whose hits start at rank 1
    keys: dict[Hashable, str]  # search id -> query key, for visual searches
    records: list[SearchRecord]  # every search read, for the metrics
    groups: dict[Hashable, tuple[str, str]]  # search id -> (UTC day, ranking), for the metrics
    n_clicks: int
    last_seq: int


def search_log(s: Session, app_id: str, *, vectors: bool, limit: int = MAX_SEARCHES) -> SearchLog:
    rows = s.execute(select(Search.id, Search.kind, Search.created_at, Search.ranking).where(Search.app_id == app_id)
                     .order_by(Search.created_at.desc(), Search.id.desc()).limit(limit)).all()[::-1]
    ids = [r.id for r in rows]
    hits: dict[str, list[tuple[int, str, float, str | None]]] = {}
    clicks: dict[str, list[tuple[int, str | None]]] = {}
    last_seq = 0
    for chunk in _chunks(ids):
        for sid, rank, input_id, score, digest in s.execute(
                select(SearchHit.search_id, SearchHit.rank, SearchHit.input_id, SearchHit.score, SearchHit.digest)
                .where(SearchHit.search_id.in_(chunk)).order_by(SearchHit.search_id, SearchHit.rank)):
            hits.setdefault(sid, []).append((rank, input_id, score, digest))
        for sid, rank, end_user, seq in s.execute(select(FeedbackEvent.search_id, FeedbackEvent.rank,
                                                         FeedbackEvent.end_user_id, FeedbackEvent.seq)
                                                  .where(FeedbackEvent.app_id == app_id,
                                                         FeedbackEvent.event_type == EventType.SEARCH_CLICK,
                                                         FeedbackEvent.search_id.in_(chunk))
                                                  .order_by(FeedbackEvent.seq)):
            if rank is not None:
                clicks.setdefault(sid, []).append((rank, end_user))
                last_seq = max(last_seq, seq)
    queries: dict[str, tuple[str, np.ndarray | None]] = {}
    vectors_of: dict[str, np.ndarray] = {}  # by image digest
    digest_of_input: dict[str, str] = {}  # for hits remembered before their digest was (migration 0013)
    if vectors:
        clicked_visual = [r.id for r in rows if "visual" in r.kind and r.id in clicks]
        for chunk in _chunks(clicked_visual, 100):  # bodies may hold images: a few at a time
            for sid, raw in s.execute(select(Search.id, Search.query).where(Search.id.in_(chunk))):
                queries[sid] = _query(s, app_id, query_refs(raw))
        wanted = sorted({i for sid in queries for _, i, _, d in hits.get(sid, []) if d is None})
        for chunk in _chunks(wanted):
            digest_of_input.update(s.execute(select(Input.id, Input.digest)
                                             .where(Input.app_id == app_id, Input.id.in_(chunk), input_has_image()))
                                   .tuples().all())
        shown = {d for sid in queries for _, _, _, d in hits.get(sid, []) if d is not None}
        stored = features(s, sorted(shown | set(digest_of_input.values())))
        vectors_of = {d: _unit(v) for d, v in stored.items()}
    sessions, records, keys = [], [], {}
    for r in rows:
        shown, said = hits.get(r.id, []), clicks.get(r.id, [])
        records.append(SearchRecord(r.id, r.kind, [rank for rank, _ in said], max((h[0] for h in shown), default=None)))
        if not shown or shown[0][0] != 1 or any(h[0] != k for k, h in enumerate(shown, start=1)):
            continue  # a later page (or a gap): ranks the click model cannot place
        key, query = queries.get(r.id, (None, None))
        if key is not None:
            keys[r.id] = key
        users = {u for _, u in said}
        sessions.append(SearchSession(r.id, r.kind, key or r.kind,
                                      [Hit(i, float(score), vectors_of.get(d or digest_of_input.get(i, "")))
                                       for _, i, score, d in shown],  # the image shown, not one stored since
                                      [rank for rank, _ in said], query,
                                      next(iter(users)) if len(users) == 1 else None))
    groups = {r.id: (as_utc(r.created_at).date().isoformat(), r.ranking or "before rankings were recorded")
              for r in rows}
    return SearchLog(sessions, keys, records, groups, sum(len(c) for c in clicks.values()), last_seq)


def metrics_json(records: Sequence[SearchRecord]) -> dict[str, Any]:
    """CTR, MRR and mean clicked rank per query kind and for "all" (:func:`evaluate_searches`)."""
    return {kind: {"n_searches": m.n_searches, "n_clicks": m.n_clicks, "too_few": m.too_few,
                   "ctr": estimate_json(m.ctr), "mrr": estimate_json(m.mrr),
                   "mean_clicked_rank": estimate_json(m.mean_clicked_rank)}
            for kind, m in evaluate_searches(records).items()}


# -- champion and challenger on later sessions ------------------------------------------------------
def holdout_figures(scorer: Scorer | None, sessions: Sequence[SearchSession], *, eta: float, max_rank: int,
                    min_propensity: float) -> dict[str, Estimate]:
    """IPS-weighted DCG of the clicked hits, and their mean rank, when each search's shown hits are
    ranked by ``scorer`` (None: cosine, the index's own order)."""
    gains, ranks = [], []
    for s in sessions:
        hits = s.hits[:max_rank]
        clicked = [r for r in s.clicked_ranks() if r <= len(hits)]
        if not clicked or s.query_vector is None or any(h.vector is None for h in hits):
            continue
        vectors = np.stack([np.asarray(h.vector) for h in hits])
        scores = scorer(s.query_vector, vectors) if scorer is not None else vectors @ _unit(s.query_vector)
        new_rank = np.empty(len(hits), dtype=int)
        new_rank[np.argsort(-scores, kind="stable")] = np.arange(1, len(hits) + 1)
        gains.append(sum(1.0 / max(float(propensity(r, eta)), min_propensity) / math.log2(1 + new_rank[r - 1])
                         for r in clicked))
        ranks.append(float(np.mean([new_rank[r - 1] for r in clicked])))
    n = len(gains)

    def estimate(values: list[float]) -> Estimate:
        if not n:
            return Estimate(None, n=0, too_few=True)
        low, high = interval(resample_counts(n, 100) @ np.array(values) / n)
        return Estimate(float(np.mean(values)), low, high, n=n, too_few=n < MIN_COUNT)

    return {PRIMARY: estimate(gains), "clicked_rank": estimate(ranks)}


# -- the service ------------------------------------------------------------------------------------
class ClickLearning:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    def model_of(self, version: ModelVersion) -> ClickModel | None:
        if (version.params or {}).get("kind") != CLICK_KIND:
            return None
        if not version.artifact_digest:
            raise errors.ModelInvalid(f"model version {version.id} has no artifact")
        return ClickModel.from_bytes(self.blobs.get(version.artifact_digest))

    def load(self, version: ModelVersion, model: Model, base: Predictor) -> Predictor:
        click_model = self.model_of(version)
        return ClickRanker(base, click_model) if click_model is not None and click_model.reranking_ else base

    def metrics(self, app_id: str) -> dict[str, Any]:
        """By query kind; and so per UTC day and per ranking (embedding version, '+memory'): a change
        of ranking shows as a before and an after; and clicks per 1-based position (position bias
        made visible: lower hits are clicked less whatever their worth)."""
        with self.db.session() as s:
            log = search_log(s, app_id, vectors=False)
            total = s.scalar(select(func.count()).select_from(Search).where(Search.app_id == app_id)) or 0

        def by(part: int) -> dict[str, Any]:
            grouped: dict[str, list[SearchRecord]] = {}
            for r in log.records:
                grouped.setdefault(log.groups[r.search_id][part], []).append(r)
            return {name: metrics_json(records) for name, records in sorted(grouped.items())}

        positions = Counter(rank for r in log.records for rank in r.clicks)
        return {"kinds": metrics_json(log.records), "by_day": by(0), "by_ranking": by(1),
                "click_positions": {str(rank): positions[rank] for rank in sorted(positions)},
                "window": {"searches": len(log.records), "of": total}}

    def train(self, version: ModelVersion, model: Model, champion_version: ModelVersion, say: Progress
              ) -> tuple[dict[str, Any], dict[str, Any], str, bool]:
        app_id = version.app_id
        say("reading remembered searches and their clicks")
        with self.db.session() as s:
            log = search_log(s, app_id, vectors=True)
        train, seen, unseen = time_split(log.sessions, [str(s.key) for s in log.sessions])
        say(f"{len(log.sessions)} searches with {log.n_clicks} clicks: {len(train)} to train, the later "
            f"{len(seen)} of queries it saw and {len(unseen)} of new queries to judge")
        challenger = ClickModel().fit(train)
        say(challenger.reason_)
        if challenger.n_click_sessions_ < challenger.min_sessions:
            raise InsufficientData(f"{challenger.reason_}; the click model re-ranks nothing before that",
                                   last_seq=log.last_seq)
        champion = self.model_of(champion_version)
        options = {"eta": challenger.eta_, "max_rank": challenger.max_rank, "min_propensity": challenger.min_propensity}
        ranked = challenger.score if challenger.reranking_ else None
        incumbent = champion.score if champion is not None and champion.reranking_ else None
        figures = {group: {"challenger": holdout_figures(ranked, later, **options),
                           "champion": holdout_figures(incumbent, later, **options)}
                   for group, later in (("seen", seen), ("unseen", unseen))}
        if challenger.reranking_:
            decision = gate({g: f["champion"][PRIMARY] for g, f in figures.items()},
                            {g: f["challenger"][PRIMARY] for g, f in figures.items()}, metric=PRIMARY)
        else:
            decision = Decision(False, f"refused: not adopted by the click model: {challenger.reason_}", [])
        say(decision.reason)
        params = {"kind": CLICK_KIND, "promoted": decision.promote, "decision": decision.reason,
                  "learned": {"reranking": challenger.reranking_, "reason": challenger.reason_,
                              "position_bias_eta": challenger.eta_, "validation": challenger.validation_,
                              "min_sessions": challenger.min_sessions, "applies_to": "visual searches"},
                  "trained_on": {"searches": len(log.records), "sessions": challenger.n_sessions_,
                                 "clicked_sessions": challenger.n_click_sessions_, "clicks": log.n_clicks,
                                 "later_sessions": {"seen": len(seen), "unseen": len(unseen)},
                                 "last_seq": log.last_seq}}
        holdout = {group: {side: {k: estimate_json(v) for k, v in values.items()} for side, values in f.items()}
                   for group, f in figures.items()}
        return params, {"holdout": holdout}, self.blobs.put(challenger.to_bytes()), decision.promote
