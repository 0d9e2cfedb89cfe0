"""Search: the Clarifai query language over an app's inputs, with every search remembered.

A query is an AND of terms:
- ``input.data.concepts``: annotated concepts (``value`` false negates the term);
- ``output.data.concepts``: concepts the general model predicted (ranked by that score);
- ``output.input.data.image`` (url/base64) or ``output.input.id``: visual similarity;
- ``input.data.metadata``: the input's metadata contains this JSON (subset match);
- ``input.data.image.url``: inputs added from exactly that URL.
Each search is stored with its id, query, the ranked hits shown (rank, input id, score), key and
time, so that a later click is tied to the position it was shown at. An app whose active embedding
version learned a ranking from those clicks (``click_model``) gets its visual hits re-ranked by it;
then the click memory (:mod:`visionloop.services.click_memory`) blends in what users clicked for
this query before, over the top :data:`MEMORY_TOP` candidates (or to the page's end, if further),
so a hit from below the page can enter it. Exploration (opt-in) may show one hit from just below
the first page in positions 6-10.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from visionloop import errors
from visionloop.ids import new_id
from visionloop.inference.catalog import EMBED, GENERAL
from visionloop.inference.predictors import MIN_SIDE, Predictor
from visionloop.metrics import METRICS
from visionloop.services import geo
from visionloop.services.apps import Caller
from visionloop.services.click_memory import (
    FIRST_PAGE,
    ClickMemoryService,
    QueryIdentity,
    canonical,
    input_vectors,
    query_identity,
)
from visionloop.services.image_source import ImageLoader, ImageSource, without_image
from visionloop.services.images import open_rgb
from visionloop.services.inputs import InputService, StoredInput
from visionloop.services.models import ModelService
from visionloop.services.paging import Page
from visionloop.services.predict import EMBEDDING_SPACE, embedding_from_bytes, still_stored, store_embeddings
from visionloop.services.search_sql import Conditions
from visionloop.services.usage import count_usage
from visionloop.store.db import Database
from visionloop.store.pg_vectors import PgVectorStore, Where
from visionloop.store.tables import (
    Concept,
    Embedding,
    Input,
    InputConcept,
    InputConceptScore,
    Search,
    SearchHit,
    SearchQueryImage,
    input_at_url,
    input_has_image,
    name_key,
)
from visionloop.store.vector_store import VectorStore

EXACT_CANDIDATES = 20_000   # a filtered visual search scores at most this many candidates exactly
MAX_REMEMBERED = 1000       # hits remembered per search (the positions a user can have seen)
PREDICTED_MIN = 0.05        # a predicted concept counts from this score
RERANK_TOP = 200            # visual hits a learned ranking (a click_model version) re-orders
MEMORY_TOP = 300            # visual candidates the click memory re-scores, whatever the page
DEFAULT_ETA = 1.0           # position bias (examination rank ** -eta) before a click model estimated it
EXPLORE_POSITIONS = (6, 10)  # where an explored hit may be shown (1-based, on the first page)
EXPLORE_POOL = 40           # it is drawn from this many hits just below the first page

Rerank = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (query, hit unit vectors) -> scores
# What a visual search ranks: every input (None), the ids its other terms admitted, or (pgvector)
# those terms as a condition of the similarity query itself.
Candidates = set[str] | Where | None


@dataclasses.dataclass(frozen=True)
class ConceptTerm:
    ref: str          # id or name
    present: bool
    predicted: bool   # output.data.concepts (predicted) vs input.data.concepts (annotated)


@dataclasses.dataclass(frozen=True)
class VisualTerm:
    source: ImageSource | None = None
    input_id: str | None = None


@dataclasses.dataclass(frozen=True)
class MetadataTerm:
    metadata: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class UrlTerm:
    url: str


@dataclasses.dataclass(frozen=True)
class GeoTerm:
    area: geo.Area


Term = ConceptTerm | VisualTerm | MetadataTerm | UrlTerm | GeoTerm


@dataclasses.dataclass
class Hit:
    rank: int
    score: float
    input: StoredInput
    propensity: float | None = None  # an explored hit: the probability it was shown here


@dataclasses.dataclass
class SearchResult:
    id: str
    hits: list[Hit]


def term_key(term: Term) -> str:
    """A non-visual term as text equal for equal terms: part of the query's identity."""
    if isinstance(term, ConceptTerm):
        return canonical("predicted" if term.predicted else "annotated", [name_key(term.ref), term.present])
    if isinstance(term, MetadataTerm):
        return canonical("metadata", term.metadata)
    if isinstance(term, GeoTerm):
        return canonical("geo", dataclasses.asdict(term.area))
    assert isinstance(term, UrlTerm)
    return canonical("url", term.url)


def query_kind(terms: Sequence[Term]) -> str:
    """The kind a search is reported under in search metrics."""
    kinds = sorted({"visual" if isinstance(t, VisualTerm) else
                    ("predicted" if t.predicted else "annotated") if isinstance(t, ConceptTerm) else
                    "metadata" if isinstance(t, MetadataTerm) else
                    "geo" if isinstance(t, GeoTerm) else "url" for t in terms})
    return "+".join(kinds)


def contains(container: Any, wanted: Any) -> bool:
    """JSON subset: every key of ``wanted`` is in ``container`` with a contained value. Scalars compare
    as JSON values: 1 and 1.0 are one number, but true is not 1 (as Python's ``True == 1`` would say)."""
    if isinstance(wanted, dict):
        return isinstance(container, dict) and all(k in container and contains(container[k], v)
                                                   for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(container, list) and all(any(contains(c, w) for c in container) for w in wanted)
    return isinstance(container, bool) == isinstance(wanted, bool) and bool(container == wanted)


class SearchService:
    def __init__(self, db: Database, inputs: InputService, models: ModelService, loader: ImageLoader,
                 indexes: VectorStore, memory: ClickMemoryService, *, explore_rate: float = 0.0) -> None:
        self.db = db
        self.inputs = inputs
        self.models = models
        self.loader = loader
        self.indexes = indexes
        # pgvector: a visual search's other terms join the similarity query (services/search_sql.py)
        self.sql_store = indexes if isinstance(indexes, PgVectorStore) else None
        self.memory = memory
        self.explore_rate = explore_rate
        self._random = random.Random()

    def search(self, caller: Caller, terms: Sequence[Term], page: Page, raw_query: dict[str, Any]) -> SearchResult:
        if not terms:
            raise errors.SearchInvalid("query.ands: at least one search term is required")
        app_id = caller.app_id
        admitted: set[str] | None = None
        scores: dict[str, float] = {}
        visual = [t for t in terms if isinstance(t, VisualTerm)]
        filters = [t for t in terms if not isinstance(t, VisualTerm)]
        in_sql = bool(visual and filters and self.sql_store is not None)  # one query: filters beside similarity
        for term in () if in_sql else filters:
            ids, term_scores = self._filter(app_id, term)
            admitted = ids if admitted is None else admitted & ids
            for input_id, v in term_scores.items():
                scores[input_id] = scores.get(input_id, 1.0) * v
        candidates: Candidates = self._conditions(app_id, filters) if in_sql else admitted
        need = page.offset + page.per_page
        digests: list[str] = []
        query: np.ndarray | None = None
        embedder = self.models.get(app_id, EMBED.id)  # its rerank and eta, when a click model learned them
        predictor = self.models.predictor(embedder.model, embedder.version)
        ranking = embedder.version.id + ("+memory" if self.memory.settings.strength > 0 else "")
        # Visual candidates: the page and what exploration may draw from; the click memory's wider
        # re-scoring only when it remembers clicks for this query or one like it (a store's cost
        # grows with how many it is asked for).
        k = max(need, FIRST_PAGE) + EXPLORE_POOL
        computed: dict[str, np.ndarray] = {}  # features of query images sent as bytes or URL, by digest
        if visual:
            found = [self._query_vector(app_id, t, computed) for t in visual]
            digests = [d for d, _ in found]
            query = np.mean([v for _, v in found], axis=0)
            ranked = self._visual(app_id, predictor, query, candidates, k)
        else:
            assert admitted is not None
            ranked = sorted(((i, scores.get(i, 1.0)) for i in admitted), key=lambda p: (-p[1], p[0]))
        identity = query_identity([term_key(t) for t in terms if not isinstance(t, VisualTerm)], digests)
        weights = self.memory.weights(app_id, identity, query, ranked)
        top = max(need, MEMORY_TOP)
        # visual terms (a query) cut short at k: ask again, as far as the memory re-scores
        if weights and query is not None and len(ranked) < top:
            ranked = self._visual(app_id, predictor, query, candidates, top)
        ranked = self.memory.rerank(app_id, identity, ranked, weights, eta=getattr(predictor, "eta", DEFAULT_ETA),
                                    top=top)
        propensities = self._explore(ranked, page)
        shown = ranked[page.offset:need]
        stored = self.inputs.get_many(app_id, [i for i, _ in shown])
        # Ranking scores (a learned re-ranking, the click memory's blend) may leave [0, 1]; a hit's
        # score is what clients threshold on, as on Clarifai, so it is shown clipped (order kept).
        hits = [Hit(page.offset + n + 1, min(1.0, max(0.0, score)), stored[i], propensities.get(i))
                for n, (i, score) in enumerate(shown) if i in stored]
        kind = query_kind(terms)
        search_id = self._remember(caller, raw_query, kind, identity, ranking, hits)
        still_stored(self.db, computed)  # the search now needs them: stored before its row, maybe collected since
        METRICS.searched(kind)
        return SearchResult(search_id, hits)

    def _explore(self, ranked: list[tuple[str, float]], page: Page) -> dict[str, float]:
        """Maybe move one hit from just below the first page into positions 6-10 of it (in place), so
        the log learns about hits never shown; returns its propensity (the chance it was put there)."""
        low, high = EXPLORE_POSITIONS[0], min(EXPLORE_POSITIONS[1], page.per_page)
        pool = ranked[page.per_page:page.per_page + EXPLORE_POOL]
        if page.offset or high < low or not pool or self._random.random() >= self.explore_rate:
            return {}
        at = self._random.randint(low, high)
        chosen = ranked.pop(page.per_page + self._random.randrange(len(pool)))
        ranked.insert(at - 1, chosen)
        return {chosen[0]: self.explore_rate / len(pool) / (high - low + 1)}

    # -- terms ----------------------------------------------------------------------------------
    def _filter(self, app_id: str, term: Term) -> tuple[set[str], dict[str, float]]:
        """The inputs a term admits: only those with their image (never one whose download failed)."""
        in_app = (Input.app_id == app_id, input_has_image())
        with self.db.session() as s:
            all_ids = lambda: set(s.scalars(select(Input.id).where(*in_app)))  # noqa: E731
            if isinstance(term, ConceptTerm):
                concept_ids = self._concept_ids(app_id, term)
                if term.predicted:
                    rows = s.execute(select(InputConceptScore.input_id, InputConceptScore.value)
                                     .where(InputConceptScore.app_id == app_id,
                                            InputConceptScore.concept_id.in_(concept_ids),
                                            InputConceptScore.value >= PREDICTED_MIN)).all()
                    matched: dict[str, float] = {}
                    for input_id, value in rows:
                        matched[input_id] = max(matched.get(input_id, 0.0), float(value))
                    if term.present:
                        return set(matched), matched
                    return all_ids() - set(matched), {}
                positive = set(s.scalars(select(InputConcept.input_id)
                                         .join(Input, (Input.app_id == InputConcept.app_id)
                                               & (Input.id == InputConcept.input_id))
                                         .where(*in_app, InputConcept.concept_id.in_(concept_ids),
                                                InputConcept.value > 0.5)))
                return (positive, {}) if term.present else (all_ids() - positive, {})
            if isinstance(term, MetadataTerm):
                rows = s.execute(select(Input.id, Input.meta).where(*in_app)).all()
                return {i for i, meta in rows if contains(meta or {}, term.metadata)}, {}
            if isinstance(term, GeoTerm):
                return self._within(s, app_id, term.area)
            assert isinstance(term, UrlTerm)
            return set(s.scalars(select(Input.id).where(*in_app, input_at_url(term.url)))), {}

    def _conditions(self, app_id: str, terms: Sequence[Term]) -> Where:
        """The terms :meth:`_filter` evaluates, as one SQL condition for the pgvector store."""
        conditions = Conditions()
        for term in terms:
            if isinstance(term, ConceptTerm):
                conditions.concept(self._concept_ids(app_id, term), present=term.present, predicted=term.predicted,
                                   predicted_min=PREDICTED_MIN)
            elif isinstance(term, MetadataTerm):
                conditions.metadata(term.metadata)
            elif isinstance(term, GeoTerm):
                conditions.geo(term.area)
            elif isinstance(term, UrlTerm):
                conditions.url(term.url)
        return conditions.where()

    @staticmethod
    def _within(s: Session, app_id: str, area: geo.Area) -> tuple[set[str], dict[str, float]]:
        """Inputs taken inside the area; within a distance, the closer the higher (1 at the centre,
        0.5 at the limit)."""
        south, north = geo.latitude_range(area)
        rows = s.execute(select(Input.id, Input.geo_latitude, Input.geo_longitude)
                         .where(Input.app_id == app_id, input_has_image(),
                                Input.geo_latitude.between(south, north))).all()
        points = {i: geo.GeoPoint(lat, lon) for i, lat, lon in rows if lat is not None and lon is not None}
        inside = {i for i, p in points.items() if geo.contains(area, p)}
        if not isinstance(area, geo.Circle) or area.radius <= 0:
            return inside, {}
        return inside, {i: 1.0 - 0.5 * geo.arc(area.center, points[i]) / area.radius for i in inside}

    def _concept_ids(self, app_id: str, term: ConceptTerm) -> list[str]:
        """A term names a concept by id or by name (case-insensitively, as feedback does): app
        concepts and, for predictions, the model's."""
        ids, key = {term.ref}, name_key(term.ref)
        with self.db.session() as s:
            ids |= set(s.scalars(select(Concept.id).where(Concept.app_id == app_id, Concept.name_key == key)))
        if term.predicted:
            view = self.models.get(app_id, GENERAL.id)
            ids |= {cid for cid, name in self.models.concepts_of(view) if name_key(name) == key}
        return sorted(ids)

    def _query_vector(self, app_id: str, term: VisualTerm, computed: dict[str, np.ndarray]) -> tuple[str, np.ndarray]:
        """The query image's digest (a stored input's image) and embedding; the features of an
        image sent are stored, and added to ``computed``."""
        if term.source is not None:
            view = self.models.get(app_id, GENERAL.id)
            image = self.loader.load(term.source, MIN_SIDE[view.model.runtime])
            pred = self.models.predictor(view.model, view.version).predict([open_rgb(image)])[0]
            assert pred.embedding is not None and pred.features is not None
            with self.db.transaction() as s:  # by digest: learning from clicks needs the query again (embedding_gc)
                store_embeddings(s, {image.digest: pred.features})
            computed[image.digest] = pred.features
            return image.digest, pred.embedding
        with self.db.session() as s:
            row = s.execute(select(Input.digest, Embedding.vector).join(Input, (Input.digest == Embedding.digest))
                            .where(Input.app_id == app_id, Input.id == term.input_id,
                                   Embedding.space == EMBEDDING_SPACE)).first()
            failed = s.get(Input, (app_id, term.input_id)) if row is None and term.input_id else None
        if failed is not None and failed.digest is None:
            raise without_image("query", failed.id, failed.status_details)
        if row is None:
            raise errors.InputNotFound(f"query: input {term.input_id!r} does not exist in this app")
        return row.digest, embedding_from_bytes(row.vector)

    def _visual(self, app_id: str, predictor: Predictor, query: np.ndarray, candidates: Candidates,
                need: int) -> list[tuple[str, float]]:
        rerank: Rerank | None = getattr(predictor, "rerank", None)
        if rerank is not None:
            return self._rerank(app_id, rerank, query, self._similar(app_id, query, candidates, max(need, RERANK_TOP)))
        return self._similar(app_id, query, candidates, need)

    def _similar(self, app_id: str, query: np.ndarray, candidates: Candidates,
                 need: int) -> list[tuple[str, float]]:
        if isinstance(candidates, Where):
            assert self.sql_store is not None
            found = self.sql_store.nearest(app_id, query, need, None, candidates)
        elif candidates is not None and len(candidates) <= EXACT_CANDIDATES:
            return self._exact(app_id, query, candidates)
        else:
            found = self.indexes.nearest(app_id, query, need, candidates)
        # Ties are broken by input id, so pages neither repeat nor skip tied hits.
        return sorted(found, key=lambda p: (-round(p[1], 6), p[0]))

    def _exact(self, app_id: str, query: np.ndarray, candidates: set[str]) -> list[tuple[str, float]]:
        if not candidates:
            return []
        with self.db.session() as s:
            rows = s.execute(select(Input.id, Embedding.vector)
                             .join(Embedding, (Embedding.digest == Input.digest) & (Embedding.space == EMBEDDING_SPACE))
                             .where(Input.app_id == app_id, Input.id.in_(list(candidates)))).all()
        if not rows:
            return []
        matrix = np.stack([embedding_from_bytes(v) for _, v in rows])
        q = query / (np.linalg.norm(query) or 1.0)
        sims = matrix @ q
        return sorted(((rows[i][0], float(sims[i])) for i in range(len(rows))), key=lambda p: (-round(p[1], 6), p[0]))

    # -- learned re-ranking -------------------------------------------------------------------------
    def _rerank(self, app_id: str, rerank: Rerank, query: np.ndarray,
                ranked: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """The top :data:`RERANK_TOP` by similarity, re-ordered (and re-scored) by the learned ranking."""
        top = ranked[:RERANK_TOP]
        with self.db.session() as s:
            vectors = input_vectors(s, app_id, [i for i, _ in top])
        known = [i for i, _ in top if i in vectors]
        if not known:
            return ranked
        scores = rerank(query, np.stack([vectors[i] for i in known]))
        learned = sorted(((i, float(sc)) for i, sc in zip(known, scores, strict=True)),
                         key=lambda p: (-round(p[1], 6), p[0]))
        return learned + [p for p in top if p[0] not in vectors] + ranked[RERANK_TOP:]

    # -- memory ---------------------------------------------------------------------------------
    def _remember(self, caller: Caller, query: dict[str, Any], kind: str, identity: QueryIdentity, ranking: str,
                  hits: list[Hit]) -> str:
        search_id = new_id()
        with self.db.transaction() as s:
            s.add(Search(id=search_id, app_id=caller.app_id, query=query, kind=kind, key_id=caller.key_id,
                         scope=identity.scope, identity=identity.identity,
                         query_digests="+".join(identity.digests) or None, ranking=ranking))
            s.flush()
            s.add_all(SearchQueryImage(search_id=search_id, digest=d) for d in sorted(set(identity.digests)))
            s.add_all(SearchHit(search_id=search_id, rank=h.rank, input_id=h.input.row.id, score=h.score,
                                digest=h.input.row.digest,  # what was shown: a click counts for this image
                                propensity=h.propensity)
                      for h in hits[:MAX_REMEMBERED])
            count_usage(s, caller, "search", 1)
        return search_id
