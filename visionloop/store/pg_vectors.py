"""The ``pgvector`` vector store: unit embeddings in a ``vector`` column of the inputs table.

Every process on the database searches the same rows, so there is no per-process index to build,
snapshot or poll: an input's embedding is written by the transaction that adds it (an UPDATE of
the row it just inserted) and disappears with the row. An HNSW index over the column answers a
search over many rows; the app (and, for a filtered search, its candidate ids) is a WHERE clause of
the same query, and pgvector's iterative index scan (0.8+) keeps walking the graph until enough rows
pass it. Few rows (:data:`EXACT_ROWS`, by the planner's estimate), or a walk that came back short (a
small app in a large table, past ``hnsw.max_scan_tuples``), are ranked by an exact scan instead.

The graph is built over the embeddings cast to half precision (``halfvec``): half the size of one
over the full-precision column, quicker to build and no slower to walk, at a recall still near 1. Only
the order of the walk uses the halves; the scores a search answers are computed from the
full-precision column, and an exact scan orders by them too. Installs from before keep their graph
over the ``vector`` column (:data:`FULL`) until ``visionloop vectors migrate`` builds the
half-precision one beside it without blocking writes (:meth:`PgVectorStore.adopt_half_precision`);
each process orders by whichever graph is there, looked up again every :data:`DETECT_SECONDS`.

The column and the index need the extension, which an ``embedded`` install must not need, so they
are not in the Alembic schema: :meth:`PgVectorStore.prepare` adds them when a process first starts
with ``pgvector`` (idempotently, one process at a time) and then copies the embeddings of inputs
added before into the column, in committed batches, so that an interrupted copy resumes where it
stopped (a first copy of many builds the index after the copy, which is much faster than growing
it row by row). A server does this before it listens, so it never answers from a half-filled column.

Searches run on connections of their own, set up once for it (the graph preferred over scans and
sorts, iterative index scans, the vector type sent in binary, statements prepared on first use),
in autocommit: a search is one round trip, or two when its filter needs the planner's estimate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import Connection, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from visionloop.config import SettingsError
from visionloop.store.db import Database, exclusive

COLUMN = "embedding"
BACKFILL_BATCH = 500
MAX_EF_SEARCH = 1000  # pgvector's limit
# Inserting into an HNSW graph row by row is several times slower than building it over rows that
# are there: a first copy of more than this many embeddings (over half the table) builds it after.
BULK_ROWS = 5000
BUILD_MEMORY = "512MB"  # the graph is built in memory when it fits (pgvector warns when it does not)

EXACT_ROWS = 5000  # fewer rows to rank (by the planner's estimate) are scanned exactly
# Rows past those asked for, so that hits tied at the boundary are all there for the caller to break
# ties by id. Small on purpose: the graph walk's cost grows with the rows it must return (the search
# service's first page asks 50: 60 rows cost much less than the 150 that a margin of 2x + 50 made).
TIE_MARGIN = 10
# How long a process trusts what it looked up (which graph there is, how many rows an app has)
# before one more catalog read; ``vectors migrate`` waits as long before dropping a graph.
DETECT_SECONDS = 10.0
SEARCH_CONNECTIONS = 5  # kept open per process (more are opened while searches run at once)
# Per search connection: the planner prices a scan of TOASTed vectors far below its cost and chose
# a sequential scan over the graph for tens of thousands of rows, so scans and sorts are priced out
# (an exact scan orders by the score, which no graph gives, so it still scans the rows); the walk
# goes on until enough rows pass the WHERE clause.
SEARCH_OPTIONS = "-c enable_seqscan=off -c enable_sort=off -c hnsw.iterative_scan=relaxed_order"

Progress = Callable[[int, int], None]  # (done so far, to do in all)


@dataclass(frozen=True)
class Where:
    """A condition on the ``inputs`` row in SQL (a search's non-visual terms:
    :mod:`visionloop.services.search_sql`), with its parameters, named apart from the store's own."""

    sql: str
    params: dict[str, object]


@dataclass(frozen=True)
class Graph:
    """An HNSW index over the column: its name and the expression it orders by."""

    name: str
    key: str    # the indexed expression
    cast: str   # the type the query vector is cast to, to be compared with it
    ops: str

    @property
    def order(self) -> str:
        return f"({self.key}) <=> CAST(:q AS {self.cast})"

    def create(self, *, concurrently: bool = False) -> str:
        how = "CONCURRENTLY " if concurrently else ""
        return f"CREATE INDEX {how}IF NOT EXISTS {self.name} ON inputs USING hnsw (({self.key}) {self.ops})"


FULL = Graph("ix_inputs_embedding_hnsw", COLUMN, "vector", "vector_cosine_ops")  # installs from before


def half_graph(dim: int) -> Graph:
    return Graph("ix_inputs_embedding_halfvec_hnsw", f"{COLUMN}::halfvec({dim})", f"halfvec({dim})",
                 "halfvec_cosine_ops")


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


def _given_options(url: str) -> str:
    """The libpq ``options`` of the database URL (else of ``PGOPTIONS``), e.g. a ``search_path``: the
    search connections' own options would replace them, so they are put first."""
    given = make_url(url).query.get("options", os.environ.get("PGOPTIONS", ""))
    return " ".join(given) if isinstance(given, tuple) else given


def _valid_graphs(conn: Connection, graphs: Sequence[Graph]) -> dict[str, bool]:
    """The graphs that exist, by name, and whether each is valid (one being built concurrently, or
    whose build was interrupted, is not)."""
    rows = conn.execute(text("SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                             "WHERE i.indrelid = 'inputs'::regclass AND c.relname = ANY(:names)"),
                        {"names": [g.name for g in graphs]}).all()
    return {name: bool(valid) for name, valid in rows}


class PgVectorStore:
    """A :class:`~visionloop.store.vector_store.VectorStore` in PostgreSQL (pgvector)."""

    def __init__(self, db: Database, space: str, dim: int, *, ef_search: int = 100) -> None:
        if db.engine.dialect.name != "postgresql":
            raise SettingsError("VISIONLOOP_VECTOR_STORE=pgvector needs PostgreSQL (VISIONLOOP_DATABASE_URL="
                                "postgresql+psycopg://...); SQLite has only the 'embedded' store")
        try:
            from pgvector.psycopg import register_vector
        except ImportError as exc:
            raise SettingsError("VISIONLOOP_VECTOR_STORE=pgvector needs the Python package 'pgvector' "
                                "(scripts/install postgres)") from exc
        self._register_vector = register_vector
        self.db = db
        self.space = space
        self.dim = dim
        self.ef_search = ef_search
        self.half = half_graph(dim)
        self._update = text(f"UPDATE inputs SET {COLUMN} = CAST(:v AS vector) WHERE app_id = :a AND id = :i")
        # What a process looked up last, and when (time.monotonic()); see DETECT_SECONDS.
        self._graph: tuple[Graph | None, float] = (None, -DETECT_SECONDS)
        self._app_rows: dict[str, tuple[float, float]] = {}
        self._connect_ef_search = ef_search
        self.search_engine = create_engine(
            db.url, isolation_level="AUTOCOMMIT", pool_size=SEARCH_CONNECTIONS, max_overflow=4 * SEARCH_CONNECTIONS,
            connect_args={"options": f"{_given_options(db.url)} {SEARCH_OPTIONS} -c hnsw.ef_search={ef_search}",
                          "prepare_threshold": 0})
        event.listen(self.search_engine, "connect", self._connected)

    def _connected(self, dbapi_connection: Any, record: Any) -> None:
        """A new search connection sends numpy arrays as pgvector's binary ``vector`` (no text to write
        in Python or parse in the server) and starts with the ``hnsw.ef_search`` of its options."""
        self._register_vector(dbapi_connection)
        dbapi_connection.commit()  # ends the transaction its type look-ups began, if any
        record.info["ef_search"] = self._connect_ef_search

    # -- setting up -----------------------------------------------------------------------------
    def prepare(self, progress: Progress | None = None) -> int:
        """Make sure the extension, column and a graph exist, then fill the column; returns the number
        of embeddings copied. Raises :class:`SettingsError` when the server lacks pgvector.

        A new install gets the half-precision graph; one that has the full-precision graph keeps it
        (replacing it is :meth:`adopt_half_precision`'s job, which does not block writes)."""
        graphs = (self.half, FULL)
        with exclusive(self.db.engine, "visionloop:pgvector"):
            with self.db.engine.begin() as conn:
                self._create(conn)
                missing, rows = conn.execute(text(f"SELECT count(*) FILTER (WHERE {COLUMN} IS NULL), count(*) "
                                                  "FROM inputs")).one()
                if missing > BULK_ROWS and missing * 2 > rows:  # a first copy: build the graph once, after it
                    for graph in graphs:
                        conn.execute(text(f"DROP INDEX IF EXISTS {graph.name}"))
            copied = self.backfill(progress)
            with self.db.engine.begin() as conn:
                if not any(_valid_graphs(conn, graphs).values()):  # an invalid one: a build that was interrupted
                    conn.execute(text(f"DROP INDEX IF EXISTS {self.half.name}"))
                    conn.execute(text(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'"))
                    conn.execute(text(self.half.create()))
            return copied

    def adopt_half_precision(self, progress: Progress | None = None) -> bool:
        """Replace the full-precision graph of an install from before by the half-precision one; returns
        whether there was one to replace. The new graph is built ``CONCURRENTLY`` (inputs are added and
        deleted meanwhile), reporting the blocks of the table read so far; running processes move to
        it within :data:`DETECT_SECONDS`, after which the old one is dropped. PostgreSQL cannot resume
        an interrupted build: a second run drops what the first left and builds again."""
        with exclusive(self.db.engine, "visionloop:pgvector-graph"), \
                self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            present = _valid_graphs(conn, (self.half, FULL))
            if FULL.name not in present:
                return False
            if not present.get(self.half.name, False):
                conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {self.half.name}"))
                conn.execute(text(f"SET maintenance_work_mem = '{BUILD_MEMORY}'"))
                self._build_watched(conn, progress)
            time.sleep(DETECT_SECONDS)  # every process has looked up the graphs again by now
            conn.execute(text(f"DROP INDEX CONCURRENTLY IF EXISTS {FULL.name}"))
            return True

    def _build_watched(self, conn: Connection, progress: Progress | None) -> None:
        """Build the half-precision graph concurrently on ``conn``, reporting progress from
        ``pg_stat_progress_create_index`` read on another connection."""
        pid = conn.scalar(text("SELECT pg_backend_pid()"))
        with ThreadPoolExecutor(1) as pool, self.db.engine.connect() as watcher:
            build = pool.submit(conn.execute, text(self.half.create(concurrently=True)))
            shown = -1
            try:
                while not build.done():
                    row = watcher.execute(text("SELECT blocks_done, blocks_total FROM pg_stat_progress_create_index "
                                               "WHERE pid = :pid AND phase LIKE 'building index%'"),
                                          {"pid": pid}).first()
                    watcher.rollback()
                    if row is not None and row.blocks_total and row.blocks_done != shown and progress is not None:
                        shown = row.blocks_done
                        progress(int(row.blocks_done), int(row.blocks_total))
                    wait([build], timeout=1.0)
            except BaseException:  # Ctrl-C: stop the build too (it leaves an invalid index, which a rerun drops)
                watcher.execute(text("SELECT pg_cancel_backend(:pid)"), {"pid": pid})
                raise
            build.result()

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
        same query (the walk goes on until enough rows pass it)."""
        k = need + TIE_MARGIN
        params: dict[str, object] = {"app": app_id, "q": unit(query), "k": k}
        where = f"app_id = :app AND {COLUMN} IS NOT NULL"
        if within is not None:
            where += " AND id = ANY(:ids)"
            params["ids"] = sorted(within)
        if condition is not None:
            where += f" AND {condition.sql}"
            params.update(condition.params)
        try:
            with self.search_engine.connect() as conn:
                return self._nearest(conn, app_id, where, params, within, condition)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        with self.search_engine.connect() as conn:  # the server went away since: once more, on a new connection
            return self._nearest(conn, app_id, where, params, within, condition)

    def _nearest(self, conn: Connection, app_id: str, where: str, params: dict[str, object],
                 within: set[str] | None, condition: Where | None) -> list[tuple[str, float]]:
        k = int(params["k"])  # type: ignore[call-overload]
        score = f"1 - ({COLUMN} <=> CAST(:q AS vector))"  # full precision, whatever graph orders the walk
        graph = self._current_graph(conn)
        if graph is not None and self._rows_to_rank(conn, app_id, where, params, within, condition) > EXACT_ROWS:
            ef = min(MAX_EF_SEARCH, max(self.ef_search, k))
            if conn.connection.info["ef_search"] != ef:
                conn.execute(text("SELECT set_config('hnsw.ef_search', :ef, false)"), {"ef": str(ef)})
                conn.connection.info["ef_search"] = ef
            rows = conn.execute(text(f"SELECT id, {score} FROM inputs WHERE {where} ORDER BY {graph.order} LIMIT :k"),
                                params).all()
            if len(rows) == k or (conn.scalar(text(f"SELECT count(*) FROM inputs WHERE {where}"), params)
                                  or 0) <= len(rows):
                return [(i, float(s)) for i, s in rows]
            # else the walk gave up early (max_scan_tuples): scan exactly
        rows = conn.execute(text(f"SELECT id, {score} AS score FROM inputs WHERE {where} ORDER BY score DESC LIMIT :k"),
                            params).all()
        return [(i, float(s)) for i, s in rows]

    def _current_graph(self, conn: Connection) -> Graph | None:
        """The graph to order by: the half-precision one when it is valid, else the full-precision one
        of an install from before; None (exact scans) while neither is."""
        graph, seen = self._graph
        if time.monotonic() - seen >= DETECT_SECONDS:
            valid = _valid_graphs(conn, (self.half, FULL))
            graph = next((g for g in (self.half, FULL) if valid.get(g.name)), None)
            self._graph = graph, time.monotonic()
        return graph

    def _rows_to_rank(self, conn: Connection, app_id: str, where: str, params: dict[str, object],
                      within: set[str] | None, condition: Where | None) -> float:
        """How many rows pass ``where``, by the planner's estimate: known without asking it for a few
        candidates, and looked up once in a while for a whole app."""
        if condition is None and within is not None and len(within) <= EXACT_ROWS:
            return len(within)
        if condition is None and within is None:
            rows, seen = self._app_rows.get(app_id, (0.0, -DETECT_SECONDS))
            if time.monotonic() - seen >= DETECT_SECONDS:
                rows = _estimated_rows(conn, f"SELECT 1 FROM inputs WHERE {where}", params)
                self._app_rows[app_id] = rows, time.monotonic()
            return rows
        return _estimated_rows(conn, f"SELECT 1 FROM inputs WHERE {where}", params)

    def close(self) -> None:
        """Only the search connections: the database keeps the index."""
        self.search_engine.dispose()
