"""The ``pgvector`` vector store: unit embeddings in a ``vector`` column of the inputs table.

Every process on the database searches the same rows, so there is no per-process index to build,
snapshot or poll: an input's embedding is written by the transaction that adds it (an UPDATE of
the row it just inserted) and disappears with the row. An HNSW index (``vector_cosine_ops``) over
the column answers a search over many rows; the app (and, for a filtered search, its candidate
ids) is a WHERE clause of the same query, and pgvector's iterative index scan (0.8+) keeps walking
the graph until enough rows pass it. Few rows (:data:`EXACT_ROWS`, by the planner's estimate), or a
walk that came back short (a small app in a large table, past ``hnsw.max_scan_tuples``), are
ranked by an exact scan instead.

The column and the index need the extension, which an ``embedded`` install must not need, so they
are not in the Alembic schema: :meth:`PgVectorStore.prepare` adds them when a process first starts
with ``pgvector`` (idempotently, one process at a time) and then copies the embeddings of inputs
added before into the column, in committed batches, so that an interrupted copy resumes where it
stopped (a first copy of many builds the index after the copy, which is much faster than growing
it row by row). A server does this before it listens, so it never answers from a half-filled column.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from visionloop.config import SettingsError
from visionloop.store.db import Database, exclusive

COLUMN = "embedding"
INDEX = "ix_inputs_embedding_hnsw"
BACKFILL_BATCH = 500
MAX_EF_SEARCH = 1000  # pgvector's limit
# Inserting into an HNSW graph row by row is several times slower than building it over rows that
# are there: a first copy of more than this many embeddings (over half the table) builds it after.
BULK_ROWS = 5000
CREATE_INDEX = f"CREATE INDEX IF NOT EXISTS {INDEX} ON inputs USING hnsw ({COLUMN} vector_cosine_ops)"
BUILD_MEMORY = "512MB"  # the graph is built in memory when it fits (pgvector warns when it does not)

EXACT_ROWS = 5000  # fewer rows to rank (by the planner's estimate) are scanned exactly
# Rows past those asked for, so that hits tied at the boundary are all there for the caller to break
# ties by id. Small on purpose: the graph walk's cost grows with the rows it must return (the search
# service's first page asks 50: 60 rows cost much less than the 150 that a margin of 2x + 50 made).
TIE_MARGIN = 10

Progress = Callable[[int, int], None]  # (embeddings copied so far, to copy in all)


@dataclass(frozen=True)
class Where:
    """A condition on the ``inputs`` row in SQL (a search's non-visual terms:
    :mod:`visionloop.services.search_sql`), with its parameters, named apart from the store's own."""

    sql: str
    params: dict[str, object]


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form of a vector: float32 values written in full, so they read back exactly."""
    return "[" + ",".join(map(str, np.asarray(vector, dtype=np.float32).tolist())) + "]"


def unit(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def _estimated_rows(conn: Connection, sql: str, params: dict[str, object]) -> float:
    """The planner's estimate of the rows a query returns (from the table's statistics; no scan)."""
    plan = conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}"), params).scalar_one()
    return float(plan[0]["Plan"]["Plan Rows"])


class PgVectorStore:
    """A :class:`~visionloop.store.vector_store.VectorStore` in PostgreSQL (pgvector)."""

    def __init__(self, db: Database, space: str, dim: int, *, ef_search: int = 100) -> None:
        if db.engine.dialect.name != "postgresql":
            raise SettingsError("VISIONLOOP_VECTOR_STORE=pgvector needs PostgreSQL (VISIONLOOP_DATABASE_URL="
                                "postgresql+psycopg://...); SQLite has only the 'embedded' store")
        self.db = db
        self.space = space
        self.dim = dim
        self.ef_search = ef_search
        # SET LOCAL in one round trip each: the graph walk keeps going until enough rows pass the WHERE
        # clause; the planner must take the graph (or, for an exact answer, must not).
        self._approximate = text("SELECT set_config('hnsw.ef_search', :ef, true), "
                                 "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                                 "set_config('enable_seqscan', 'off', true), set_config('enable_sort', 'off', true)")
        self._exact = text("SELECT set_config('enable_indexscan', 'off', true), "
                           "set_config('enable_seqscan', 'on', true), set_config('enable_sort', 'on', true)")
        self._update = text(f"UPDATE inputs SET {COLUMN} = CAST(:v AS vector) WHERE app_id = :a AND id = :i")

    # -- setting up -----------------------------------------------------------------------------
    def prepare(self, progress: Progress | None = None) -> int:
        """Make sure the extension, column and index exist, then fill the column; returns the number
        of embeddings copied. Raises :class:`SettingsError` when the server lacks pgvector."""
        with exclusive(self.db.engine, "visionloop:pgvector"):
            with self.db.engine.begin() as conn:
                self._create(conn)
                missing, rows = conn.execute(text(f"SELECT count(*) FILTER (WHERE {COLUMN} IS NULL), count(*) "
                                                  "FROM inputs")).one()
                if missing > BULK_ROWS and missing * 2 > rows:  # a first copy: build the graph once, after it
                    conn.execute(text(f"DROP INDEX IF EXISTS {INDEX}"))
            copied = self.backfill(progress)
            with self.db.engine.begin() as conn:
                conn.execute(text(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'"))
                conn.execute(text(CREATE_INDEX))
            return copied

    def _create(self, conn: Connection) -> None:
        installed = conn.scalar(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
        if installed is None:
            if conn.scalar(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")) is None:
                raise SettingsError("VISIONLOOP_VECTOR_STORE=pgvector: this PostgreSQL server has no pgvector "
                                    "extension ('vector' is not in pg_available_extensions); install pgvector "
                                    "on the server, or set VISIONLOOP_VECTOR_STORE=embedded")
            try:
                with conn.begin_nested():
                    conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
            except DBAPIError as exc:
                raise SettingsError("VISIONLOOP_VECTOR_STORE=pgvector: the extension is available but could not "
                                    f"be created ({str(exc.orig).strip()}); have a superuser run "
                                    "'CREATE EXTENSION vector' in this database") from exc
        conn.execute(text(f"ALTER TABLE inputs ADD COLUMN IF NOT EXISTS {COLUMN} vector({self.dim})"))

    def backfill(self, progress: Progress | None = None) -> int:
        """Copy stored embeddings into the column for inputs that have none there yet, a committed
        batch at a time in primary-key order (so a restart resumes, re-reading only filled keys)."""
        missing = (f"FROM inputs i JOIN embeddings e ON e.digest = i.digest AND e.space = :space "
                   f"WHERE i.{COLUMN} IS NULL")
        with self.db.engine.connect() as conn:
            total = int(conn.scalar(text(f"SELECT count(*) {missing}"), {"space": self.space}) or 0)
        done, after = 0, ("", "")
        select_batch = text(f"SELECT i.app_id, i.id, e.vector {missing} AND (i.app_id, i.id) > (:a, :i) "
                            "ORDER BY i.app_id, i.id LIMIT :n")
        while total:
            with self.db.engine.begin() as conn:
                rows = conn.execute(select_batch, {"space": self.space, "a": after[0], "i": after[1],
                                                   "n": BACKFILL_BATCH}).all()
                if not rows:
                    break
                conn.execute(self._update, [{"a": a, "i": i, "v": vector_literal(unit(np.frombuffer(v, "<f4")))}
                                            for a, i, v in rows])
            done, after = done + len(rows), (rows[-1][0], rows[-1][1])
            if progress is not None:
                progress(done, total)
        return done

    # -- the VectorStore interface ----------------------------------------------------------------
    def write(self, s: Session, app_id: str, rows: Sequence[tuple[str, np.ndarray]]) -> None:
        if rows:
            s.execute(self._update, [{"a": app_id, "i": i, "v": vector_literal(unit(v))} for i, v in rows])

    def add(self, app_id: str, items: Sequence[tuple[str, str]], vectors: np.ndarray, generation: int) -> None:
        """Nothing left to do: :meth:`write` stored the embeddings with the inputs."""

    def remove(self, app_id: str, input_ids: Sequence[str], generation: int) -> None:
        """Nothing to do: an input's embedding goes with its row."""

    def nearest(self, app_id: str, query: np.ndarray, need: int,
                within: set[str] | None, condition: Where | None = None) -> list[tuple[str, float]]:
        """The graph when the rows to rank are many, else an exact scan; and an exact scan should the
        graph walk stop short of the rows there are. ``condition``: what else a row must pass, in the
        same query (the walk goes on until enough rows pass it).

        The planner is not left to choose: it prices a scan of TOASTed vectors far below its cost
        and picked a sequential scan over the graph for tens of thousands of rows, so the approximate
        query runs with sequential scans and sorts priced out, the exact one without index scans."""
        k = need + TIE_MARGIN
        params: dict[str, object] = {"app": app_id, "q": vector_literal(unit(query)), "k": k}
        where = f"app_id = :app AND {COLUMN} IS NOT NULL"
        if within is not None:
            where += " AND id = ANY(:ids)"
            params["ids"] = sorted(within)
        if condition is not None:
            where += f" AND {condition.sql}"
            params.update(condition.params)
        select_nearest = text(f"SELECT id, 1 - ({COLUMN} <=> CAST(:q AS vector)) FROM inputs WHERE {where} "
                              f"ORDER BY {COLUMN} <=> CAST(:q AS vector) LIMIT :k")
        with self.db.engine.begin() as conn:
            rows = None
            if _estimated_rows(conn, f"SELECT 1 FROM inputs WHERE {where}", params) > EXACT_ROWS:
                conn.execute(self._approximate, {"ef": str(min(MAX_EF_SEARCH, max(self.ef_search, k)))})
                rows = conn.execute(select_nearest, params).all()
                if len(rows) < k and (conn.scalar(text(f"SELECT count(*) FROM inputs WHERE {where}"), params)
                                      or 0) > len(rows):
                    rows = None  # the walk gave up early (max_scan_tuples): scan exactly
            if rows is None:
                conn.execute(self._exact)
                rows = conn.execute(select_nearest, params).all()
        return [(i, float(score)) for i, score in rows]

    def close(self) -> None:
        """Nothing held: the database keeps the index."""
