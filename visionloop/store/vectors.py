"""An embedded nearest-neighbour index over image embeddings, one per (app, embedding space).

Vectors are kept L2-normalised in one contiguous float32 matrix, so an exact answer is a single
matrix product away. Small indexes (up to ``exact_threshold`` vectors) answer every query that
way: it is fast enough and never misses. Once an index grows past the threshold it also builds an
HNSW graph (usearch, float32) and answers approximately unless ``exact=True``. The graph uses the
inner product: on unit rows that is the cosine, without recomputing two norms per distance.
The graph keeps its own copy of the vectors, so a large index costs about twice its raw size in
memory and on disk; the matrix is what makes exact answers and cheap small apps possible.

The database stays the source of truth. ``save`` writes a snapshot stamped with a caller-chosen
``stamp`` (e.g. the last embedding row id); ``load`` refuses snapshots it cannot trust::

    IndexUnusable         the caller should rebuild from the database
    ├── IndexMissing      nothing saved at that path
    ├── IndexCorrupt      unreadable manifest, truncated file, checksum or shape mismatch
    └── IndexStale        saved under a different stamp than the caller expects

Threads: any number of searches may run together; ``add``/``remove`` wait for them and block new
ones meanwhile. ``add`` takes the lock one chunk at a time, so a bulk load does not stall search
for its whole duration (the one-off graph build when an index first outgrows the threshold does).
Calls into usearch are also serialised by a mutex: its Python binding resizes per-thread scratch
space inside ``search`` and numbers threads from 0 on every call, so two concurrent calls could
share scratch space. A single query holds the mutex for about a millisecond or less; a batch
still uses all cores inside its one call.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import numpy as np
from usearch.index import BatchMatches, Index

__all__ = ["IndexCorrupt", "IndexMissing", "IndexStale", "IndexUnusable", "VectorIndex", "key_for"]

KEY_MASK = (1 << 63) - 1
_FREE_KEY = (1 << 64) - 1  # usearch's marker for an empty slot; cannot be stored
_FORMAT = 1
_MANIFEST = "manifest.json"
_OWN_PREFIXES = ("keys-", "vectors-", "graph-", f"{_MANIFEST}.")
_ADD_CHUNK = 1024  # vectors inserted per write lock: ~1 s of graph work at 1280 dims on 2 cores
_EXACT_BLOCK = 1 << 25  # query-by-vector scores computed at once (128 MiB of float32)


def key_for(input_id: str) -> int:
    """Map an input id to an index key: stable across processes (unlike ``hash``) and 63-bit,
    so it also fits a signed BIGINT column."""
    digest = hashlib.blake2b(input_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & KEY_MASK


class IndexUnusable(Exception):
    """The saved index cannot be used; rebuild it from the database."""


class IndexMissing(IndexUnusable):
    """Nothing (complete) has been saved at this path."""


class IndexCorrupt(IndexUnusable):
    """The saved files do not match their manifest or cannot be read."""


class IndexStale(IndexUnusable):
    """The index was saved under another stamp than the caller expects."""


class _ReadWriteLock:
    """Many readers or one writer. A waiting writer holds back new readers so that a steady
    stream of searches cannot starve ``add``. Not re-entrant."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


class VectorIndex:
    """Cosine-similarity index from uint64 keys to ``dim``-dimensional vectors.

    ``connectivity`` (HNSW "M"), ``expansion_add`` ("efConstruction") and ``expansion_search``
    ("ef") default to values measured in ``bench/search.py`` to give recall@10 >= 0.95 at 1M
    vectors. ``threads=0`` lets usearch use every core for bulk adds and batched searches. Its
    parallel insert guards graph nodes with spin locks, so on a machine already busier than its
    core count a thread preempted while holding one stalls the others: use ``threads=1`` there.
    """

    def __init__(
        self,
        dim: int,
        *,
        exact_threshold: int = 20_000,
        connectivity: int = 16,
        expansion_add: int = 64,
        expansion_search: int = 256,
        threads: int = 0,
    ) -> None:
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        self.dim = dim
        self.exact_threshold = exact_threshold
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self._expansion_search = expansion_search
        self.threads = threads
        self._vectors = np.empty((0, dim), dtype=np.float32)
        self._keys = np.empty(0, dtype=np.uint64)
        self._rows: dict[int, int] = {}
        self._hnsw: Index | None = None
        self._lock = _ReadWriteLock()
        self._hnsw_lock = threading.Lock()

    # -- size and membership ------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._rows)

    def contains(self, key: int) -> bool:
        return int(key) in self._rows

    def __repr__(self) -> str:
        mode = "hnsw" if self._hnsw is not None else "exact"
        return f"VectorIndex(dim={self.dim}, size={len(self)}, mode={mode})"

    @property
    def nbytes(self) -> int:
        """Approximate memory held: matrix (with spare capacity), key map, and HNSW graph with
        its own copy of the vectors."""
        key_map = sys.getsizeof(self._rows) + 64 * len(self._rows)  # two int objects per entry
        graph = self._hnsw.memory_usage if self._hnsw is not None else 0
        return self._vectors.nbytes + self._keys.nbytes + key_map + graph

    @property
    def expansion_search(self) -> int:
        """HNSW search breadth: raise it to trade latency for recall without rebuilding."""
        return self._expansion_search

    @expansion_search.setter
    def expansion_search(self, value: int) -> None:
        self._expansion_search = value
        if self._hnsw is not None:
            with self._hnsw_lock:
                # usearch defines this setter apart from its getter, which mypy reads as read-only
                self._hnsw.expansion_search = value  # type: ignore[misc]

    # -- updates ------------------------------------------------------------------------------

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace: a key already present gets the new vector. Within one call the
        last occurrence of a repeated key wins.

        Large batches go in chunks so that searches are not held up for the whole batch; a
        search running meanwhile may see part of it.
        """
        keys = _as_keys(keys)
        vectors = _normalised(vectors, self.dim)
        if len(keys) != len(vectors):
            raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
        if len(keys) == 0:
            return
        if len(np.unique(keys)) != len(keys):
            _, last_from_end = np.unique(keys[::-1], return_index=True)
            keep = np.sort(len(keys) - 1 - last_from_end)
            keys, vectors = keys[keep], vectors[keep]
        for lo in range(0, len(keys), _ADD_CHUNK):  # let searches in between chunks
            with self._lock.write():
                self._add_locked(keys[lo : lo + _ADD_CHUNK], vectors[lo : lo + _ADD_CHUNK])

    def _add_locked(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        n = len(self._rows)
        rows = np.fromiter((self._rows.get(k, -1) for k in keys.tolist()), np.int64, len(keys))
        new = rows < 0
        rows[new] = np.arange(n, n + int(new.sum()))
        self._reserve(n + int(new.sum()))
        self._vectors[rows] = vectors
        self._keys[rows] = keys
        self._rows.update(zip(keys[new].tolist(), rows[new].tolist()))
        if self._hnsw is not None:
            with self._hnsw_lock:
                if not new.all():
                    self._hnsw.remove(keys[~new])
                self._hnsw.add(keys, vectors, threads=self.threads)
        elif len(self._rows) > self.exact_threshold:
            self._build_hnsw()  # once per index; searches wait for it

    def remove(self, keys: np.ndarray) -> int:
        """Drop keys (absent ones are ignored); returns how many were present."""
        keys = _as_keys(keys)
        with self._lock.write():
            present = [k for k in dict.fromkeys(keys.tolist()) if k in self._rows]
            for key in present:
                row, last = self._rows.pop(key), len(self._rows)
                if row != last:  # keep the matrix dense: move the last row into the hole
                    moved = int(self._keys[last])
                    self._vectors[row] = self._vectors[last]
                    self._keys[row] = moved
                    self._rows[moved] = row
            if self._hnsw is not None and present:
                with self._hnsw_lock:
                    self._hnsw.remove(np.array(present, dtype=np.uint64))
        return len(present)

    def _reserve(self, n: int) -> None:
        """Grow the matrix by half again when full, amortising copies without doubling memory."""
        capacity = len(self._keys)
        if n <= capacity:
            return
        capacity = max(n, capacity + capacity // 2, 1024)
        vectors = np.empty((capacity, self.dim), dtype=np.float32)
        keys = np.empty(capacity, dtype=np.uint64)
        used = len(self._rows)
        vectors[:used] = self._vectors[:used]
        keys[:used] = self._keys[:used]
        self._vectors, self._keys = vectors, keys

    def _new_hnsw(self) -> Index:
        return Index(
            ndim=self.dim,
            metric="ip",  # rows are unit length, so inner product is cosine without the norms
            dtype="f32",
            connectivity=self.connectivity,
            expansion_add=self.expansion_add,
            expansion_search=self._expansion_search,
        )

    def _build_hnsw(self) -> None:
        n = len(self._rows)
        hnsw = self._new_hnsw()
        hnsw.add(self._keys[:n], self._vectors[:n], threads=self.threads)
        with self._hnsw_lock:
            self._hnsw = hnsw

    # -- queries ------------------------------------------------------------------------------

    def search(
        self, query: np.ndarray, k: int, *, exact: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar keys, best first, with their cosine similarities.

        A ``(d,)`` query gives 1-D arrays, a ``(q, d)`` batch gives ``(q, k)`` arrays; fewer
        than ``k`` columns only when the index holds fewer than ``k`` vectors. Answers are exact
        when asked, when the index is small, or for a query the graph could not fill.
        """
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        single = np.ndim(query) == 1
        queries = _normalised(query, self.dim)
        with self._lock.read():
            k = min(k, len(self._rows))
            if k == 0 or len(queries) == 0:
                keys, scores = np.empty((len(queries), k), np.uint64), np.empty((len(queries), k), np.float32)
            elif exact or self._hnsw is None or len(self._rows) <= self.exact_threshold:
                keys, scores = self._search_exact(queries, k)
            else:
                keys, scores = self._search_hnsw(queries, k)
        return (keys[0], scores[0]) if single else (keys, scores)

    def _search_exact(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self._rows)
        base = self._vectors[:n]
        keys = np.empty((len(queries), k), dtype=np.uint64)
        scores = np.empty((len(queries), k), dtype=np.float32)
        step = max(1, _EXACT_BLOCK // n)  # bound the (queries x n) score matrix
        for lo in range(0, len(queries), step):
            sims = queries[lo : lo + step] @ base.T
            top = np.argpartition(sims, n - k, axis=1)[:, n - k :] if k < n else np.argsort(sims, axis=1)
            top_sims = np.take_along_axis(sims, top, axis=1)
            order = np.argsort(-top_sims, axis=1, kind="stable")
            keys[lo : lo + step] = self._keys[np.take_along_axis(top, order, axis=1)]
            scores[lo : lo + step] = np.take_along_axis(top_sims, order, axis=1)
        return keys, scores

    def _search_hnsw(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._hnsw is not None
        with self._hnsw_lock:
            found = self._hnsw.search(queries, k, threads=self.threads)
        if len(queries) == 1:  # usearch unwraps a batch of one and trims it to what it found
            keys, distances, counts = found.keys[None, :], found.distances[None, :], np.array([len(found)])
        else:
            batch = cast(BatchMatches, found)  # what usearch answers for several queries
            keys, distances, counts = batch.keys, batch.distances, batch.counts
        if counts.min() < k:  # a sparse graph region (e.g. after many removals): answer exactly
            keys = np.pad(keys, ((0, 0), (0, k - keys.shape[1])))
            distances = np.pad(distances, ((0, 0), (0, k - distances.shape[1])))
            short = counts < k
            exact_keys, exact_scores = self._search_exact(queries[short], k)
            keys[short], distances[short] = exact_keys, 1.0 - exact_scores
        return keys[:, :k].astype(np.uint64, copy=False), (1.0 - distances[:, :k]).astype(np.float32)

    # -- persistence --------------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str], *, stamp: str) -> None:
        """Write a snapshot into directory ``path``.

        Data files get fresh names and the manifest is swapped in last with ``os.replace``, so a
        crash leaves either the old snapshot or the new one, never a mix. Updates wait meanwhile.
        """
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(6)
        with self._lock.read():
            n = len(self._rows)
            files = {
                "keys": _write_npy(directory / f"keys-{token}.npy", self._keys[:n]),
                "vectors": _write_npy(directory / f"vectors-{token}.npy", self._vectors[:n]),
            }
            if self._hnsw is not None:
                graph = directory / f"graph-{token}.usearch"
                with self._hnsw_lock:
                    self._hnsw.save(os.fspath(graph))
                files["graph"] = _describe(graph)
            manifest = {
                "format": _FORMAT,
                "stamp": stamp,
                "dim": self.dim,
                "count": n,
                "params": self._params(),
                "files": files,
            }
        tmp = directory / f"{_MANIFEST}.{token}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / _MANIFEST)
        _fsync_dir(directory)
        live = {entry["name"] for entry in files.values()}
        for leftover in directory.iterdir():  # older snapshots and debris of interrupted saves
            if leftover.name not in live and leftover.name.startswith(_OWN_PREFIXES):
                leftover.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, stamp: str | None = None) -> VectorIndex:
        """Read a snapshot written by :meth:`save`.

        With ``stamp`` given, a snapshot saved under another stamp raises :class:`IndexStale`
        before any large file is read. Raises :class:`IndexMissing` / :class:`IndexCorrupt`
        rather than returning a partial index.
        """
        directory = Path(path)
        manifest = _read_manifest(directory)
        if stamp is not None and manifest["stamp"] != stamp:
            raise IndexStale(f"{directory}: saved at {manifest['stamp']!r}, expected {stamp!r}")
        try:
            dim, count, files = int(manifest["dim"]), int(manifest["count"]), manifest["files"]
            index = cls(dim, **manifest["params"])
            for entry in files.values():
                _verify(directory / entry["name"], entry)
            keys = np.load(directory / files["keys"]["name"], allow_pickle=False)
            vectors = np.load(directory / files["vectors"]["name"], allow_pickle=False)
            if keys.shape != (count,) or vectors.shape != (count, dim):
                raise IndexCorrupt(f"{directory}: arrays do not hold {count} vectors of {dim} dims")
            index._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            index._keys = keys.astype(np.uint64, copy=False)
            index._rows = dict(zip(keys.tolist(), range(count)))
            if len(index._rows) != count:
                raise IndexCorrupt(f"{directory}: repeated keys")
            if "graph" in files:
                index._hnsw = index._new_hnsw()
                index._hnsw.load(os.fspath(directory / files["graph"]["name"]))
                if len(index._hnsw) != count or index._hnsw.ndim != dim:
                    raise IndexCorrupt(f"{directory}: graph does not match the arrays")
            elif count > index.exact_threshold:
                index._build_hnsw()
        except IndexUnusable:
            raise
        except (KeyError, TypeError, ValueError, OSError, RuntimeError) as exc:
            raise IndexCorrupt(f"{directory}: {exc}") from exc
        return index

    def _params(self) -> dict[str, int]:
        return {
            "exact_threshold": self.exact_threshold,
            "connectivity": self.connectivity,
            "expansion_add": self.expansion_add,
            "expansion_search": self._expansion_search,
            "threads": self.threads,
        }


# -- helpers ------------------------------------------------------------------------------------


def _as_keys(keys: Any) -> np.ndarray:
    keys = np.atleast_1d(np.asarray(keys))
    if keys.ndim != 1 or not np.issubdtype(keys.dtype, np.integer):
        raise ValueError("keys must be a 1-D array of integers")
    if np.issubdtype(keys.dtype, np.signedinteger) and (keys < 0).any():
        raise ValueError("keys must be non-negative")
    unsigned: np.ndarray = keys.astype(np.uint64, copy=False)
    if (unsigned == _FREE_KEY).any():
        raise ValueError("key 2**64 - 1 is reserved")
    return unsigned


def _normalised(vectors: Any, dim: int) -> np.ndarray:
    """(n, dim) float32 rows of unit length (zero rows stay zero), so dot product is cosine."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    if vectors.ndim != 2 or vectors.shape[1] != dim:
        raise ValueError(f"expected vectors of {dim} dims, got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise ValueError("vectors contain NaN or infinity")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.ascontiguousarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def _write_npy(path: Path, array: np.ndarray) -> dict[str, Any]:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    return _describe(path)


def _describe(path: Path) -> dict[str, Any]:
    """Name, size and CRC-32 of a data file: enough to catch truncation and bit rot, and CRC-32
    runs at memory speed, which matters for multi-gigabyte snapshots."""
    return {"name": path.name, "bytes": path.stat().st_size, "crc32": _crc32(path)}


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc


def _verify(path: Path, entry: dict[str, Any]) -> None:
    if not path.is_file():
        raise IndexCorrupt(f"{path} is missing")
    if path.stat().st_size != entry["bytes"] or _crc32(path) != entry["crc32"]:
        raise IndexCorrupt(f"{path} does not match its checksum")


def _read_manifest(directory: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((directory / _MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexMissing(f"no vector index saved in {directory}") from exc
    except (OSError, ValueError) as exc:
        raise IndexCorrupt(f"{directory / _MANIFEST}: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT or "stamp" not in manifest:
        raise IndexCorrupt(f"{directory / _MANIFEST}: not a format-{_FORMAT} manifest")
    return manifest


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
