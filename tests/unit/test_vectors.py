"""VectorIndex: exact answers, HNSW recall, updates, persistence and key hashing."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from visionloop.store.vectors import (
    IndexCorrupt,
    IndexMissing,
    IndexStale,
    IndexUnusable,
    VectorIndex,
    key_for,
)

DIM = 32


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def clustered(rng: np.random.Generator, n: int, dim: int = DIM, centres: int = 50) -> np.ndarray:
    means = unit(rng.standard_normal((centres, dim)))
    noise = rng.standard_normal((n, dim)).astype(np.float32) * np.float32(0.6 / np.sqrt(dim))
    return unit(means[rng.integers(0, centres, n)] + noise)


def brute_force(data: np.ndarray, keys: np.ndarray, queries: np.ndarray, k: int):
    sims = unit(queries) @ unit(data).T
    order = np.argsort(-sims, axis=1)[:, :k]
    return keys[order], np.take_along_axis(sims, order, axis=1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


# exact_threshold=0 builds the HNSW graph from the first vector; the default keeps small
# indexes exact. Behaviour that must not depend on the mode runs under both.
MODES = pytest.mark.parametrize("threshold", [20_000, 0], ids=["exact", "hnsw"])


def test_key_for_is_stable_and_63_bit() -> None:
    assert key_for("a2b5") == key_for("a2b5") == 0x5426A42A792207EA
    ids = [f"input-{i}" for i in range(2000)]
    keys = [key_for(i) for i in ids]
    assert all(0 <= k < 2**63 for k in keys)
    assert len(set(keys)) == len(ids)


def test_exact_mode_equals_brute_force(rng: np.random.Generator) -> None:
    data = rng.standard_normal((3000, DIM)).astype(np.float32) * 3  # not unit: scores are still cosines
    keys = rng.integers(0, 2**63, size=len(data), dtype=np.uint64)
    assert len(np.unique(keys)) == len(keys)
    queries = rng.standard_normal((25, DIM)).astype(np.float32)
    index = VectorIndex(DIM)
    index.add(keys, data)

    got_keys, got_scores = index.search(queries, 10)
    want_keys, want_scores = brute_force(data, keys, queries, 10)
    np.testing.assert_array_equal(got_keys, want_keys)
    np.testing.assert_allclose(got_scores, want_scores, rtol=0, atol=1e-5)

    one_keys, one_scores = index.search(queries[3], 10)
    assert one_keys.shape == one_scores.shape == (10,)
    np.testing.assert_array_equal(one_keys, want_keys[3])


def test_exact_flag_overrides_the_graph(rng: np.random.Generator) -> None:
    data = clustered(rng, 2000)
    keys = np.arange(len(data), dtype=np.uint64)
    index = VectorIndex(DIM, exact_threshold=0)
    index.add(keys, data)
    queries = clustered(rng, 20)
    got_keys, got_scores = index.search(queries, 10, exact=True)
    want_keys, want_scores = brute_force(data, keys, queries, 10)
    np.testing.assert_array_equal(got_keys, want_keys)
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-5)


def test_ann_recall_at_10(rng: np.random.Generator) -> None:
    points = clustered(rng, 20_200, centres=200)
    data, queries = points[:20_000], points[20_000:]  # held-out queries from the same mixture
    # Default graph parameters, graph always used; one thread makes the graph deterministic.
    index = VectorIndex(DIM, exact_threshold=0, threads=1)
    index.add(np.arange(len(data)), data)

    got, scores = index.search(queries, 10)
    want, _ = index.search(queries, 10, exact=True)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got.tolist(), want.tolist())])
    assert recall >= 0.95
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # best first


def test_index_switches_to_the_graph_past_the_threshold(rng: np.random.Generator) -> None:
    data = clustered(rng, 600)
    index = VectorIndex(DIM, exact_threshold=500)
    index.add(np.arange(400), data[:400])
    assert "exact" in repr(index)
    index.add(np.arange(400, 600), data[400:])
    assert "hnsw" in repr(index)
    keys, scores = index.search(data[550], 1)
    assert keys.tolist() == [550] and scores[0] == pytest.approx(1.0, abs=1e-5)


@MODES
def test_upsert_replaces_the_vector(threshold: int, rng: np.random.Generator) -> None:
    data = clustered(rng, 300)
    index = VectorIndex(DIM, exact_threshold=threshold)
    index.add(np.arange(300), data)
    index.add(np.array([5]), -data[5])
    assert len(index) == 300
    keys, scores = index.search(-data[5], 1)
    assert keys.tolist() == [5] and scores[0] == pytest.approx(1.0, abs=1e-5)
    keys, _ = index.search(data[5], 300)
    assert keys[-1] == 5  # now the least similar to its old vector


@MODES
def test_last_occurrence_wins_within_one_add(threshold: int, rng: np.random.Generator) -> None:
    a, b = clustered(rng, 2)
    index = VectorIndex(DIM, exact_threshold=threshold)
    index.add(np.array([9, 9]), np.stack([a, b]))
    assert len(index) == 1
    _, scores = index.search(b, 1)
    assert scores[0] == pytest.approx(1.0, abs=1e-5)


@MODES
def test_removed_keys_disappear(threshold: int, rng: np.random.Generator) -> None:
    data = clustered(rng, 500)
    index = VectorIndex(DIM, exact_threshold=threshold)
    index.add(np.arange(500), data)
    gone = np.arange(0, 500, 3)

    assert index.remove(np.concatenate([gone, [10_000]])) == len(gone)
    assert len(index) == 500 - len(gone)
    assert not index.contains(3) and index.contains(4)
    for exact in (False, True):
        keys, _ = index.search(data[gone], 10, exact=exact)
        assert not np.isin(keys, gone).any()
    keys, scores = index.search(data[4], 1)
    assert keys.tolist() == [4] and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert index.remove(gone) == 0


@MODES
def test_k_is_capped_by_the_size(threshold: int, rng: np.random.Generator) -> None:
    index = VectorIndex(DIM, exact_threshold=threshold)
    keys, scores = index.search(clustered(rng, 3), 5)
    assert keys.shape == scores.shape == (3, 0)
    index.add(np.arange(4), clustered(rng, 4))
    keys, _ = index.search(clustered(rng, 3), 10)
    assert keys.shape == (3, 4)
    assert sorted(keys[0].tolist()) == [0, 1, 2, 3]


def test_rejects_bad_input() -> None:
    index = VectorIndex(DIM)
    with pytest.raises(ValueError, match="dims"):
        index.add(np.arange(2), np.ones((2, DIM + 1)))
    with pytest.raises(ValueError, match="keys"):
        index.add(np.arange(3), np.ones((2, DIM)))
    with pytest.raises(ValueError, match="non-negative"):
        index.add(np.array([-1]), np.ones((1, DIM)))
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.array([1]), np.full((1, DIM), np.nan))
    with pytest.raises(ValueError, match="dims"):
        index.search(np.ones(DIM - 1), 3)


@MODES
def test_save_load_round_trip(threshold: int, rng: np.random.Generator, tmp_path: Path) -> None:
    data = clustered(rng, 800)
    index = VectorIndex(DIM, exact_threshold=threshold, expansion_search=80)
    index.add(np.arange(800) * 7, data)
    index.remove(np.array([0, 7]))
    queries = clustered(rng, 20)
    index.save(tmp_path / "idx", stamp="emb-42")

    loaded = VectorIndex.load(tmp_path / "idx", stamp="emb-42")
    assert len(loaded) == 798 and loaded.dim == DIM and loaded.expansion_search == 80
    assert loaded.contains(14) and not loaded.contains(7)
    for exact in (False, True):
        want_keys, want_scores = index.search(queries, 10, exact=exact)
        got_keys, got_scores = loaded.search(queries, 10, exact=exact)
        np.testing.assert_array_equal(got_keys, want_keys)
        np.testing.assert_allclose(got_scores, want_scores, atol=1e-6)
    loaded.add(np.array([7]), data[1])  # still writable after loading
    assert loaded.search(data[1], 1)[0].tolist() == [7]


def test_saving_again_replaces_the_snapshot(rng: np.random.Generator, tmp_path: Path) -> None:
    index = VectorIndex(DIM, exact_threshold=0)
    index.add(np.arange(100), clustered(rng, 100))
    index.save(tmp_path, stamp="1")
    index.add(np.arange(100, 150), clustered(rng, 50))
    index.save(tmp_path, stamp="2")
    assert len(VectorIndex.load(tmp_path)) == 150
    assert len(list(tmp_path.iterdir())) == 4  # manifest, keys, vectors, graph of the last save


def test_stale_missing_and_corrupt_snapshots_are_refused(rng: np.random.Generator, tmp_path: Path) -> None:
    with pytest.raises(IndexMissing):
        VectorIndex.load(tmp_path / "nothing")

    index = VectorIndex(DIM, exact_threshold=0)
    index.add(np.arange(200), clustered(rng, 200))
    index.save(tmp_path, stamp="v1")
    with pytest.raises(IndexStale):
        VectorIndex.load(tmp_path, stamp="v2")

    for pattern in ("vectors-*.npy", "graph-*.usearch", "keys-*.npy"):
        target = next(tmp_path.glob(pattern))
        original = target.read_bytes()
        target.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))  # one flipped byte
        with pytest.raises(IndexCorrupt):
            VectorIndex.load(tmp_path)
        target.write_bytes(original[: len(original) // 2])  # truncated
        with pytest.raises(IndexCorrupt):
            VectorIndex.load(tmp_path)
        target.unlink()
        with pytest.raises(IndexCorrupt):
            VectorIndex.load(tmp_path)
        target.write_bytes(original)
    assert len(VectorIndex.load(tmp_path, stamp="v1")) == 200

    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(IndexUnusable):
        VectorIndex.load(tmp_path)


def test_searches_run_while_adding(rng: np.random.Generator) -> None:
    data = clustered(rng, 4000)
    index = VectorIndex(DIM, exact_threshold=1000)
    index.add(np.arange(500), data[:500])
    errors: list[BaseException] = []
    done = threading.Event()

    def search_until_done() -> None:
        try:
            while not done.is_set():
                keys, scores = index.search(data[:8], 5)
                assert keys.shape == (8, 5) and np.isfinite(scores).all()
                index.search(data[9], 5, exact=True)
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    readers = [threading.Thread(target=search_until_done) for _ in range(3)]
    for reader in readers:
        reader.start()
    for lo in range(500, 4000, 250):
        index.add(np.arange(lo, lo + 250), data[lo : lo + 250])
        index.remove(np.array([lo - 1]))
    done.set()
    for reader in readers:
        reader.join()
    assert not errors
    assert len(index) == 4000 - 14
