"""The click memory of search: query identity, and the clicks of earlier searches read back from the log.

Nothing is derived and stored: every search reads the click events of the searches that asked the
same query (and its near-duplicates and nearest neighbours) straight from the feedback log, so a
click shows in the next search at once, in every API process sharing the database, and erasing an
end user's feedback erases its effect exactly. The scoring is
:class:`~visionloop.learning.click_memory.ClickMemory`; docs/search-learning.md describes both.

Query identity. The non-visual terms of a query (concepts by casefolded name or id, presence and
source; metadata as canonical JSON; URL; geo area) make its *scope*; a query's *identity* is its
scope and the digests of its query images (a stored input stands for its image, so searching by
an input and by its image are one query). Remembered queries of the same scope whose images'
embedding is within ``duplicate_cosine`` of this one's count as the same query; the nearest others
vote with less weight (:func:`~visionloop.learning.click_memory.query_weights`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from visionloop.inference.backbone import EMBEDDING_DIM
from visionloop.learning.click_memory import ClickMemory, Observation, query_weights
from visionloop.learning.vocabulary import EventType
from visionloop.services.feedback.log import as_utc
from visionloop.services.predict import EMBEDDING_SPACE, embedding_from_bytes
from visionloop.store.db import Database
from visionloop.store.tables import Embedding, FeedbackEvent, Input, Search, SearchHit

MAX_CLICKS = 20_000  # the latest clicks of an app, and of a query, that are read (older ones have decayed)
FIRST_PAGE = 10
MAX_RANK = 50  # hits of a clicked search read as shown (further down, hardly ever looked at)
MAX_VECTORS = 100_000  # remembered query vectors kept in memory (they never change: keyed by digest)


@dataclasses.dataclass(frozen=True)
class QueryIdentity:
    scope: str  # hash of the non-visual terms
    identity: str  # hash of the scope and the query images
    digests: tuple[str, ...]  # query images, sorted (none for a query without images)


def query_identity(filters: Sequence[str], digests: Sequence[str]) -> QueryIdentity:
    """The identity of a query from its canonical non-visual terms and its query images' digests."""
    scope = hashlib.sha256("\n".join(sorted(filters)).encode()).hexdigest()
    images = tuple(sorted(digests))
    identity = hashlib.sha256(f"{scope}\n{'+'.join(images)}".encode()).hexdigest()
    return QueryIdentity(scope, identity, images)


def canonical(kind: str, value: Any) -> str:
    """One term as text that two equal terms share (JSON with sorted keys)."""
    return f"{kind}:{json.dumps(value, sort_keys=True, default=str)}"


def input_vectors(s: Session, app_id: str, ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Unit embeddings of the app's inputs by id (inputs without one are absent)."""
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(ids), 500):
        out.update((i, embedding_from_bytes(v)) for i, v in s.execute(
            select(Input.id, Embedding.vector)
            .join(Embedding, (Embedding.digest == Input.digest) & (Embedding.space == EMBEDDING_SPACE))
            .where(Input.app_id == app_id, Input.id.in_(list(ids[start:start + 500])))))
    return out


@dataclasses.dataclass(frozen=True)
class MemorySettings:
    strength: float = 10.0  # 0: the memory is off
    half_life_days: float = 30.0
    duplicate_cosine: float = 0.97
    neighbour_weight: float = 0.2  # 0: new queries get no votes from remembered ones
    neighbours: int = 10
    neighbour_floor: float = 0.5


class ClickMemoryService:
    def __init__(self, db: Database, settings: MemorySettings) -> None:
        self.db = db
        self.settings = settings
        self._vectors: dict[str, np.ndarray] = {}

    def weights(self, app_id: str, query: QueryIdentity, vector: np.ndarray | None,
                ranked: list[tuple[str, float]]) -> dict[str, float]:
        """How much each remembered query's clicks count for this one, given its ranking's first page
        at least ({} when none does, and the ranking stands as it is)."""
        if self.settings.strength <= 0 or not ranked:
            return {}
        # A remembered query is a neighbour only if it is at least as similar as this query's last
        # hit on a first page: as close as what the user is shown anyway.
        floor = max(self.settings.neighbour_floor, ranked[min(len(ranked), FIRST_PAGE) - 1][1])
        with self.db.session() as s:
            return self._query_weights(s, app_id, query, vector, floor)

    def rerank(self, app_id: str, query: QueryIdentity, ranked: list[tuple[str, float]], weights: dict[str, float],
               *, eta: float, top: int) -> list[tuple[str, float]]:
        """``ranked`` (input id, score): its ``top`` re-scored and re-sorted with what users clicked for
        the remembered queries ``weights`` names (:meth:`weights`), the rest as it was."""
        if not weights or not ranked:
            return ranked
        with self.db.session() as s:
            observations = self._observations(s, app_id, query.scope, weights)
            if not observations:
                return ranked
            memory = ClickMemory(eta=eta, half_life_days=self.settings.half_life_days,
                                 strength=self.settings.strength).fit(observations)
            head = ranked[:top]
            ids = [i for i, _ in head]
            vectors = None
            if memory.own_clicks_:
                found = input_vectors(s, app_id, ids)
                vectors = np.stack([found.get(i, np.zeros(EMBEDDING_DIM, np.float32)) for i in ids])
        scores = memory.rerank(ids, [sc for _, sc in head], vectors)
        return sorted(((i, float(sc)) for i, sc in zip(ids, scores, strict=True)),
                      key=lambda p: (-round(p[1], 6), p[0])) + ranked[top:]

    def _query_weights(self, s: Session, app_id: str, query: QueryIdentity, vector: np.ndarray | None,
                       floor: float) -> dict[str, float]:
        """Remembered queries of the scope clicked among the app's latest clicks -> how much their
        clicks count for this one."""
        recent = (select(FeedbackEvent.search_id)
                  .where(FeedbackEvent.app_id == app_id, FeedbackEvent.event_type == EventType.SEARCH_CLICK)
                  .order_by(FeedbackEvent.seq.desc()).limit(MAX_CLICKS).subquery())
        remembered = s.execute(select(Search.identity, Search.query_digests).distinct()
                               .join(recent, recent.c.search_id == Search.id)
                               .where(Search.app_id == app_id, Search.scope == query.scope)).all()
        weights = {identity: 1.0 for identity, _ in remembered if identity == query.identity}
        if vector is None or not query.digests:
            return weights
        others = [(identity, tuple(digests.split("+"))) for identity, digests in remembered
                  if identity != query.identity and digests]
        vectors = self._query_vectors(s, {d for _, ds in others for d in ds})
        usable = [(identity, ds) for identity, ds in others if all(d in vectors for d in ds)]
        if not usable:
            return weights
        q = vector / max(float(np.linalg.norm(vector)), 1e-12)
        matrix = np.stack([np.mean([vectors[d] for d in ds], axis=0) for _, ds in usable])
        sims = matrix @ q / np.maximum(np.linalg.norm(matrix, axis=1), 1e-12)
        cfg = self.settings
        got = query_weights(sims, same=cfg.duplicate_cosine, floor=floor, neighbours=cfg.neighbours,
                            neighbour_weight=cfg.neighbour_weight)
        weights.update({identity: float(w) for (identity, _), w in zip(usable, got, strict=True) if w > 0})
        return weights

    def _query_vectors(self, s: Session, digests: set[str]) -> dict[str, np.ndarray]:
        """Unit embeddings of remembered query images by digest. They stay while their search has a
        click in the log (:mod:`visionloop.services.embedding_gc`); one missing in a deletion race is
        absent, and its query then counts only when asked again exactly."""
        missing = sorted(digests - set(self._vectors))
        if len(self._vectors) + len(missing) > MAX_VECTORS:
            self._vectors = {}
        for start in range(0, len(missing), 500):
            for digest, raw in s.execute(select(Embedding.digest, Embedding.vector)
                                         .where(Embedding.space == EMBEDDING_SPACE,
                                                Embedding.digest.in_(missing[start:start + 500]))):
                self._vectors[digest] = embedding_from_bytes(raw)
        return {d: self._vectors[d] for d in digests if d in self._vectors}

    def _observations(self, s: Session, app_id: str, scope: str, weights: dict[str, float]) -> list[Observation]:
        """The hits shown by the clicked searches of the weighted queries, each clicked or not."""
        clicks = s.execute(select(FeedbackEvent.search_id, FeedbackEvent.input_id, FeedbackEvent.rank,
                                  FeedbackEvent.end_user_id, FeedbackEvent.session_id, FeedbackEvent.created_at,
                                  Search.identity)
                           .join(Search, Search.id == FeedbackEvent.search_id)
                           .where(Search.app_id == app_id, Search.scope == scope,
                                  Search.identity.in_(list(weights)), FeedbackEvent.app_id == app_id,
                                  FeedbackEvent.event_type == EventType.SEARCH_CLICK, FeedbackEvent.rank.is_not(None))
                           .order_by(FeedbackEvent.seq.desc()).limit(MAX_CLICKS)).all()
        now = dt.datetime.now(dt.UTC)
        observations: list[Observation] = []
        lowest: dict[str, int] = {}
        context: dict[str, tuple[str, float, float]] = {}  # search -> (user, age, weight) of its lowest click
        clicked: set[tuple[str, str]] = set()
        for sid, input_id, rank, end_user, session, created, identity in clicks:
            user = end_user or (f"session:{session}" if session else f"search:{sid}")
            age = (now - as_utc(created)).total_seconds()
            observations.append(Observation(input_id, rank, True, user, age, weights[identity]))
            clicked.add((sid, input_id))
            if rank > lowest.get(sid, 0):
                lowest[sid] = rank
                context[sid] = (user, age, weights[identity])
        ids = list(lowest)
        for start in range(0, len(ids), 500):
            for sid, rank, input_id in s.execute(select(SearchHit.search_id, SearchHit.rank, SearchHit.input_id)
                                                 .where(SearchHit.search_id.in_(ids[start:start + 500]),
                                                        SearchHit.rank <= MAX_RANK)):
                if (sid, input_id) not in clicked:
                    user, age, weight = context[sid]
                    observations.append(Observation(input_id, rank, False, user, age, weight, rank < lowest[sid]))
        return observations
