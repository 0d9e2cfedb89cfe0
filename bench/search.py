"""Benchmark visual search: VectorIndex (HNSW) against brute-force numpy on the same data.

    python bench/search.py            # 100k x 1280-d, 1M x 256-d twice (about 40 min on 2 idle cores)
    python bench/search.py --quick    # 10k x 1280-d and 50k x 256-d (under a minute)
    python bench/search.py --only mixture-1M --threads 1   # one dataset; single-threaded build
    python bench/search.py --backend pgvector [--n N]      # the pgvector store (bench/search_pgvector.py)

Use ``--threads 1`` on a machine that is already busy: usearch's parallel insert spins on locks
and slows down sharply when its threads are preempted.

Data is a Gaussian mixture of unit-normalised centres plus noise as large as the centre (a
point's cosine to its centre is about 0.7), normalised again, like L2-normalised embeddings. The
noise is isotropic or, with ``decay``, concentrated in a few directions as in real embeddings;
isotropic noise in 256 dims with 1000 points per centre is a worst case for graph indexes (inside a
cluster every point is almost equally far away). Queries are held-out draws from the same mixture.

For each dataset it measures the index build, single-query latency (p50/p99) and recall@10
against exact answers, and the brute-force baseline (matrix-vector product + argpartition) on the
same queries in the same run; those brute-force answers are the ground truth. Prints a table
and writes ``bench/out/search.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import usearch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from visionloop.store.vectors import VectorIndex  # noqa: E402

K = 10
OUT = Path(__file__).resolve().parent / "out" / "search.json"


@dataclass(frozen=True)
class Dataset:
    name: str
    n: int
    dim: int
    centres: int = 1000
    noise: float = 1.0  # norm of the noise relative to the (unit) centre
    decay: float = 0.0  # noise std along dimension i falls as i**-decay; 0 = isotropic


FULL = [
    Dataset("embeddings-100k", 100_000, 1280),
    # Real embeddings have a decaying spectrum (few effective dimensions per cluster); decay 0.5
    # gives ~23 effective dimensions. The isotropic variant is the known worst case for graphs.
    Dataset("mixture-1M", 1_000_000, 256, decay=0.5),
    Dataset("mixture-1M-isotropic", 1_000_000, 256),
]
# ~100 points per centre or more, so that a query's 10 nearest neighbours are real neighbours
# rather than near-ties at the noise floor between clusters.
QUICK = [
    Dataset("embeddings-10k", 10_000, 1280, centres=100),
    Dataset("mixture-50k", 50_000, 256, centres=500, decay=0.5),
]


def mixture(ds: Dataset, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``ds.n`` points and ``queries`` held-out points from one mixture, built in chunks to keep
    peak memory near the size of the result."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((ds.centres, ds.dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = np.arange(1, ds.dim + 1, dtype=np.float32) ** np.float32(-ds.decay)
    spread *= np.float32(ds.noise) / np.linalg.norm(spread)  # expected noise norm = ds.noise
    points = np.empty((ds.n + queries, ds.dim), dtype=np.float32)
    step = 50_000
    for lo in tqdm(range(0, len(points), step), desc=f"{ds.name}: data", unit="chunk", leave=False):
        hi = min(lo + step, len(points))
        chunk = centres[rng.integers(0, ds.centres, hi - lo)]
        chunk += spread * rng.standard_normal(chunk.shape, dtype=np.float32)
        chunk /= np.linalg.norm(chunk, axis=1, keepdims=True)
        points[lo:hi] = chunk
    return points[: ds.n], points[ds.n :].copy()


def brute_force(data: np.ndarray, queries: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The baseline a service without an index would run, one query at a time; returns the
    exact top-k (ground truth) and per-query latencies in milliseconds."""
    n = len(data)
    truth = np.empty((len(queries), K), dtype=np.int64)
    latencies = np.empty(len(queries))
    for i, query in enumerate(tqdm(queries, desc=f"{name}: brute force", unit="q", leave=False)):
        start = time.perf_counter()
        sims = data @ query
        top = np.argpartition(sims, n - K)[n - K :]
        top = top[np.argsort(-sims[top])]
        latencies[i] = (time.perf_counter() - start) * 1e3
        truth[i] = top
    return truth, latencies


def build(data: np.ndarray, name: str, threads: int) -> tuple[VectorIndex, float]:
    index = VectorIndex(data.shape[1], exact_threshold=0, threads=threads)  # the graph even when small
    step = 25_000
    start = time.perf_counter()
    with tqdm(total=len(data), desc=f"{name}: build", unit="vec", leave=False) as bar:
        for lo in range(0, len(data), step):
            chunk = data[lo : lo + step]
            index.add(np.arange(lo, lo + len(chunk), dtype=np.uint64), chunk)
            bar.update(len(chunk))
    return index, time.perf_counter() - start


def single_queries(index: VectorIndex, queries: np.ndarray, **kwargs: bool) -> tuple[np.ndarray, np.ndarray]:
    found = np.empty((len(queries), K), dtype=np.int64)
    latencies = np.empty(len(queries))
    for query in queries[:20]:  # warm caches and usearch's per-thread buffers
        index.search(query, K, **kwargs)
    for i, query in enumerate(queries):
        start = time.perf_counter()
        keys, _ = index.search(query, K, **kwargs)
        latencies[i] = (time.perf_counter() - start) * 1e3
        found[i, : len(keys)] = keys
    return found, latencies


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found.tolist(), truth.tolist())]))


def p(latencies: np.ndarray, q: float) -> float:
    return round(float(np.percentile(latencies, q)), 3)


def run(ds: Dataset, queries: int, seed: int, threads: int) -> dict:
    load_before = os.getloadavg()[0]
    data, held_out = mixture(ds, queries, seed)
    truth, brute_ms = brute_force(data, held_out, ds.name)
    index, build_s = build(data, ds.name, threads)
    found, hnsw_ms = single_queries(index, held_out)

    start = time.perf_counter()
    index.search(held_out, K)
    batch_qps = len(held_out) / (time.perf_counter() - start)

    few = held_out[:100]  # the index's own exact mode, for comparison with the baseline
    _, exact_ms = single_queries(index, few, exact=True)

    sweep = []
    default_ef = index.expansion_search
    for ef in (16, 32, 64, 128, 256):
        index.expansion_search = ef
        swept, ms = single_queries(index, held_out)
        sweep.append({
            "expansion_search": ef,
            "recall_at_10": round(recall(swept, truth), 4),
            "p50_ms": p(ms, 50),
            "p99_ms": p(ms, 99),
        })
    index.expansion_search = default_ef

    with tempfile.TemporaryDirectory(dir=OUT.parent) as tmp:
        start = time.perf_counter()
        index.save(tmp, stamp="bench")
        save_s = time.perf_counter() - start
        disk_bytes = sum(f.stat().st_size for f in Path(tmp).iterdir())
        start = time.perf_counter()
        VectorIndex.load(tmp, stamp="bench")
        load_s = time.perf_counter() - start

    return {
        "dataset": asdict(ds),
        "queries": len(held_out),
        "params": {
            "connectivity": index.connectivity,
            "expansion_add": index.expansion_add,
            "expansion_search": default_ef,
            "threads": threads,
        },
        "build_s": round(build_s, 1),
        "build_vectors_per_s": round(ds.n / build_s),
        "hnsw_p50_ms": p(hnsw_ms, 50),
        "hnsw_p99_ms": p(hnsw_ms, 99),
        "recall_at_10": round(recall(found, truth), 4),
        "brute_p50_ms": p(brute_ms, 50),
        "brute_p99_ms": p(brute_ms, 99),
        "speedup_p50": round(float(np.percentile(brute_ms, 50) / np.percentile(hnsw_ms, 50)), 1),
        "speedup_p99": round(float(np.percentile(brute_ms, 99) / np.percentile(hnsw_ms, 99)), 1),
        "exact_mode_p50_ms": p(exact_ms, 50),
        "batch_queries_per_s": round(batch_qps),
        "memory_mib": round(index.nbytes / 2**20),
        "raw_vectors_mib": round(data.nbytes / 2**20),
        "save_s": round(save_s, 1),
        "load_s": round(load_s, 1),
        "disk_mib": round(disk_bytes / 2**20),
        "expansion_search_sweep": sweep,
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def print_table(results: list[dict]) -> None:
    columns = [
        ("dataset", lambda r: r["dataset"]["name"]),
        ("n", lambda r: f"{r['dataset']['n']:,}"),
        ("dim", lambda r: r["dataset"]["dim"]),
        ("build s", lambda r: r["build_s"]),
        ("hnsw p50 ms", lambda r: r["hnsw_p50_ms"]),
        ("hnsw p99 ms", lambda r: r["hnsw_p99_ms"]),
        ("recall@10", lambda r: r["recall_at_10"]),
        ("brute p50 ms", lambda r: r["brute_p50_ms"]),
        ("brute p99 ms", lambda r: r["brute_p99_ms"]),
        ("speed-up p50", lambda r: f"{r['speedup_p50']}x"),
        ("memory MiB", lambda r: r["memory_mib"]),
    ]
    rows = [[str(get(r)) for _, get in columns] for r in results]
    widths = [max(len(name), *(len(row[i]) for row in rows)) for i, (name, _) in enumerate(columns)]
    print(" | ".join(name.ljust(w) for (name, _), w in zip(columns, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    for r in results:
        sweep = ", ".join(
            f"ef={s['expansion_search']}: {s['recall_at_10']} @ {s['p50_ms']} ms" for s in r["expansion_search_sweep"]
        )
        before, after = r["load_average_1min"]
        print(
            f"\n{r['dataset']['name']}: build {r['build_vectors_per_s']:,} vectors/s, "
            f"exact mode p50 {r['exact_mode_p50_ms']} ms, batch {r['batch_queries_per_s']:,} queries/s, "
            f"save {r['save_s']} s, load {r['load_s']} s, disk {r['disk_mib']} MiB, "
            f"load average {before} -> {after} on {os.cpu_count()} cores"
        )
        print(f"  recall@10 / p50 by expansion_search: {sweep}")


def main() -> None:
    if "--backend" in sys.argv:  # the pgvector store has a bench of its own, with its own options
        from bench import search_pgvector

        at = sys.argv.index("--backend")
        if sys.argv[at + 1 : at + 2] != ["pgvector"]:
            sys.exit("bench/search.py: --backend takes 'pgvector' (the embedded index is the default)")
        search_pgvector.main(sys.argv[1:at] + sys.argv[at + 2 :])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small datasets, under a minute")
    parser.add_argument("--queries", type=int, help="held-out queries per dataset (500, quick: 200)")
    parser.add_argument("--only", action="append", metavar="NAME", help="run only this dataset (repeatable)")
    parser.add_argument("--threads", type=int, default=0,
                        help="usearch threads for building, 0 = all cores; 1 on an oversubscribed machine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    queries = args.queries or (200 if args.quick else 500)
    datasets = [ds for ds in (QUICK if args.quick else FULL) if not args.only or ds.name in args.only]
    if not datasets:
        parser.error(f"no dataset named {args.only}")
    report = {
        "quick": args.quick,
        "k": K,
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "usearch": usearch.__version__,
        },
        "results": [],
    }
    results = report["results"]
    for ds in datasets:
        results.append(run(ds, queries, args.seed, args.threads))
        args.out.write_text(json.dumps(report, indent=2) + "\n")  # keep finished datasets if stopped
    print_table(results)
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
