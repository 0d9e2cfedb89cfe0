"""The ``pgvector`` vector store: the same answers as the embedded index, recall against exact
search under filters and beside other apps, the error when the extension is missing, and the
resumable copy of existing embeddings into the vector column."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import text

from tests import pgserver
from tests.conftest import make_api
from tests.helpers import Api, b64, clean_env
from visionloop.config import SettingsError, load_settings
from visionloop.core import VisionLoop
from visionloop.http.app import create_app
from visionloop.inference.backbone import EMBEDDING_DIM
from visionloop.inference.runtime import ModelRuntime
from visionloop.services.predict import EMBEDDING_SPACE
from visionloop.services.search_sql import Conditions
from visionloop.store import pg_vectors
from visionloop.store.pg_vectors import FULL, Graph, PgVectorStore, half_graph, unit
from visionloop.store.tables import Input
from visionloop.store.vectors import VectorIndex

pytestmark = pytest.mark.postgres

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def pg_url(pg_server: Any, database_url: str) -> str:
    return database_url


def _core(tmp_path: Path, name: str, url: str, runtime: ModelRuntime, **settings: Any) -> VisionLoop:
    return VisionLoop(load_settings({"data_dir": tmp_path / name, "database_url": url, **settings}, environ={}),
                      runtime)


@pytest.fixture(params=["halfvec", "vector"])
def graph(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Graph:
    """The graph the store walks: a new install's half-precision one, or the full-precision one of an
    install from before (which :func:`_use` puts in its place); looked up on every search."""
    monkeypatch.setattr(pg_vectors, "DETECT_SECONDS", 0.0)
    return half_graph(EMBEDDING_DIM) if request.param == "halfvec" else FULL


def _use(core: VisionLoop, graph: Graph) -> None:
    if graph == FULL:
        with core.db.engine.begin() as conn:
            conn.execute(text(f"DROP INDEX {half_graph(EMBEDDING_DIM).name}"))
            conn.execute(text(FULL.create()))


def _graphs(core: VisionLoop) -> set[str]:
    with core.db.engine.connect() as conn:
        return set(conn.scalars(text("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'ix_inputs_embedding%'")))


@pytest.fixture
def pair(tmp_path: Path, pg_url: str, runtime: ModelRuntime, graph: Graph,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, Api]]:
    """One app through a pgvector server and through an embedded one, on one database; the
    pgvector one walks the graph however few the inputs are."""
    monkeypatch.setattr(pg_vectors, "EXACT_ROWS", 0)
    pg = _core(tmp_path, "pg", pg_url, runtime, vector_store="pgvector")
    _use(pg, graph)
    embedded = _core(tmp_path, "embedded", pg_url, runtime)
    with TestClient(create_app(pg.settings, pg), raise_server_exceptions=False) as pg_client, \
            TestClient(create_app(embedded.settings, embedded), raise_server_exceptions=False) as embedded_client:
        api = make_api(pg, pg_client, "shop")
        yield api, Api(embedded_client, api.key, "shop")
    pg.close()
    embedded.close()


def noise_png(seed: int) -> bytes:
    """A distinct image per seed (a tinted noise field), so similarities differ."""
    rng = np.random.default_rng(seed)
    tint = rng.integers(0, 256, 3)
    pixels = (rng.integers(0, 256, (48, 48, 3)) * 0.5 + tint * 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _add(api: Api, n: int, start: int = 0) -> None:
    inputs = [{"id": f"in-{i}", "data": {"image": {"base64": b64(noise_png(i))},
                                         "metadata": {"group": i % 3, "tags": ["a", "b"] if i % 4 else ["c"],
                                                      "size": {"w": i % 2, "h": 1.0}},
                                         "concepts": [{"id": "odd", "value": i % 2 == 1}],
                                         "geo": {"geo_point": {"latitude": i - 10.0,
                                                               "longitude": (i + 355.0) % 360 - 180}}}}
              for i in range(start, start + n)]
    response = api.post("/inputs", {"inputs": inputs})
    assert response.status_code == 200, response.text


def _hits(api: Api, ands: list[dict[str, Any]], page: int = 1, per_page: int = 10) -> list[tuple[str, float]]:
    response = api.post("/searches", {"query": {"ands": ands}, "pagination": {"page": page, "per_page": per_page}})
    assert response.status_code == 200, response.text
    return [(h["input"]["id"], h["score"]) for h in response.json()["hits"]]


QUERIES = [
    [{"output": {"input": {"id": "in-0"}}}],
    [{"output": {"input": {"data": {"image": {"base64": b64(noise_png(100))}}}}}],
    [{"output": {"input": {"id": "in-4"}}}, {"input": {"data": {"metadata": {"group": 1}}}}],
    [{"output": {"input": {"id": "in-7"}}}, {"input": {"data": {"concepts": [{"id": "odd", "value": True}]}}}],
    [{"output": {"input": {"id": "in-7"}}}, {"input": {"data": {"concepts": [{"id": "odd", "value": False}]}}},
     {"input": {"data": {"metadata": {"tags": ["b"], "size": {"h": 1}}}}}],
    [{"output": {"input": {"id": "in-3"}}}, {"input": {"data": {"metadata": {"tags": "a"}}}}],  # no: not an array
    [{"output": {"input": {"id": "in-3"}}}, {"output": {"data": {"concepts": [{"name": "jigsaw puzzle"}]}}}],
    [{"output": {"input": {"id": "in-3"}}}, {"input": {"data": {"geo": {
        "geo_point": {"latitude": 0, "longitude": 185 - 360}, "geo_limit": {"type": "withinKilometers",
                                                                           "value": 800}}}}}],
    [{"output": {"input": {"id": "in-3"}}}, {"input": {"data": {"geo": {"geo_box": [
        {"geo_point": {"latitude": -8, "longitude": 178}}, {"geo_point": {"latitude": 9, "longitude": -174}}]}}}}],
]


@pytest.mark.parametrize("ands", QUERIES, ids=["by-id", "by-image", "with-metadata", "with-concept",
                                               "not-concept-nested-metadata", "scalar-in-array",
                                               "predicted-concept", "geo-circle", "geo-box-across-180"])
def test_pgvector_answers_as_the_embedded_index(pair: tuple[Api, Api], ands: list[dict[str, Any]]) -> None:
    pg, embedded = pair
    _add(pg, 24)
    for page in (1, 2):
        got, want = _hits(pg, ands, page, 5), _hits(embedded, ands, page, 5)
        assert want or ands in (QUERIES[5], QUERIES[6]), "only these two may admit nothing"
        assert [i for i, _ in got] == [i for i, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5)


def test_an_added_input_is_found_at_once_and_a_deleted_one_is_gone(pair: tuple[Api, Api]) -> None:
    pg, embedded = pair
    _add(pg, 6)
    assert _hits(pg, [{"output": {"input": {"id": "in-5"}}}])[0] == ("in-5", pytest.approx(1.0, abs=1e-5))
    assert pg.delete("/inputs/in-5").status_code == 200
    assert "in-5" not in [i for i, _ in _hits(pg, [{"output": {"input": {"id": "in-0"}}}])]


# -- the store on its own: recall against exact search ---------------------------------------------

def _store_with(core: VisionLoop, apps: dict[str, np.ndarray]) -> PgVectorStore:
    store = core.indexes
    assert isinstance(store, PgVectorStore)
    for app_id, vectors in apps.items():
        core.apps.create_app(app_id)
        with core.db.transaction() as s:
            s.add_all(Input(app_id=app_id, id=f"v{i}", digest=f"d{i}", width=1, height=1, meta={},
                            status_code=30000) for i in range(len(vectors)))
            s.flush()
            store.write(s, app_id, [(f"v{i}", v) for i, v in enumerate(vectors)])
    return store


def _exact(vectors: np.ndarray, query: np.ndarray, k: int, ids: list[int] | None = None) -> list[str]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(vectors.shape[1], exact_threshold=10**9)
    keep = np.arange(len(vectors)) if ids is None else np.array(ids)
    index.add(keep.astype(np.uint64), unit[keep])
    keys, _ = index.search(query, k, exact=True)
    return [f"v{k}" for k in keys]


def _clusters(rng: np.random.Generator, n: int, centres: int = 40) -> np.ndarray:
    middle = rng.normal(size=(centres, EMBEDDING_DIM))
    return (middle[rng.integers(0, centres, n)] + 0.6 * rng.normal(size=(n, EMBEDDING_DIM))).astype(np.float32)


def test_recall_against_exact_search_with_filters_and_beside_a_larger_app(
        tmp_path: Path, pg_url: str, runtime: ModelRuntime, monkeypatch: pytest.MonkeyPatch, graph: Graph) -> None:
    monkeypatch.setattr(pg_vectors, "EXACT_ROWS", 0)  # the graph, then an exact scan where it stops short
    rng = np.random.default_rng(7)
    big, small = _clusters(rng, 1500), _clusters(rng, 25)
    core = _core(tmp_path, "pg", pg_url, runtime, vector_store="pgvector")
    try:
        _use(core, graph)
        store = _store_with(core, {"big": big, "small": small})
        with core.db.engine.begin() as conn:
            conn.execute(text("ANALYZE inputs"))
        queries = _clusters(rng, 20)
        subset = sorted(rng.choice(len(big), 300, replace=False).tolist())
        recall, filtered = [], []
        for q in queries:
            found = sorted(store.nearest("big", q, 10, None), key=lambda p: -p[1])[:10]
            recall.append(len({i for i, _ in found} & set(_exact(big, q, 10))) / 10)
            within = {f"v{i}" for i in subset}
            found = sorted(store.nearest("big", q, 10, within), key=lambda p: -p[1])[:10]
            assert {i for i, _ in found} <= within
            filtered.append(len({i for i, _ in found} & set(_exact(big, q, 10, subset))) / 10)
            # a small app beside a large one, and a very selective filter: complete and exact
            assert {i for i, _ in store.nearest("small", q, 25, None)} == {f"v{i}" for i in range(25)}
            few = store.nearest("big", q, 10, {"v3", "v30", "v300"})
            assert sorted(i for i, _ in few) == ["v3", "v30", "v300"]
        assert np.mean(recall) >= 0.95 and np.mean(filtered) >= 0.95, (np.mean(recall), np.mean(filtered))
        scores = dict(store.nearest("small", small[4], 10, None))
        assert scores["v4"] == pytest.approx(1.0, abs=1e-5)
    finally:
        core.close()


def test_a_selective_filter_in_the_similarity_query_keeps_recall(
        tmp_path: Path, pg_url: str, runtime: ModelRuntime, monkeypatch: pytest.MonkeyPatch, graph: Graph) -> None:
    """2% of the inputs pass a metadata term: the graph walk (iterative index scan) goes on until
    enough of them are found, in the one query that also orders by similarity."""
    monkeypatch.setattr(pg_vectors, "EXACT_ROWS", 0)  # the graph, however few rows pass
    rng = np.random.default_rng(11)
    big = _clusters(rng, 1500)
    rare = sorted(rng.choice(len(big), 30, replace=False).tolist())
    core = _core(tmp_path, "pg", pg_url, runtime, vector_store="pgvector")
    try:
        _use(core, graph)
        store = _store_with(core, {"big": big})
        with core.db.engine.begin() as conn:
            conn.execute(text("UPDATE inputs SET metadata = CAST('{\"rare\": true}' AS json) WHERE id = ANY(:ids)"),
                         {"ids": [f"v{i}" for i in rare]})
            conn.execute(text("ANALYZE inputs"))
        conditions = Conditions()
        conditions.metadata({"rare": True})
        recall = []
        for q in _clusters(rng, 20):
            found = sorted(store.nearest("big", q, 10, None, conditions.where()), key=lambda p: -p[1])[:10]
            assert {i for i, _ in found} <= {f"v{i}" for i in rare}
            recall.append(len({i for i, _ in found} & set(_exact(big, q, 10, rare))) / 10)
        assert np.mean(recall) >= 0.95, np.mean(recall)
    finally:
        core.close()


def test_a_graph_walk_that_stops_short_is_followed_by_an_exact_scan(
        tmp_path: Path, pg_url: str, runtime: ModelRuntime, monkeypatch: pytest.MonkeyPatch, graph: Graph) -> None:
    monkeypatch.setattr(pg_vectors, "EXACT_ROWS", 0)
    rng = np.random.default_rng(3)
    small = _clusters(rng, 25)
    core = _core(tmp_path, "pg", pg_url, runtime, vector_store="pgvector")
    try:
        _use(core, graph)
        store = _store_with(core, {"big": _clusters(rng, 400), "small": small})
        with core.db.engine.begin() as conn:  # the walk gives up after 20 tuples, most of them another app's
            conn.execute(text(f"ALTER DATABASE {core.db.engine.url.database} SET hnsw.max_scan_tuples = 20"))
        store.search_engine.dispose()  # new connections take the setting
        with store.search_engine.connect() as conn:  # the graph alone finds only some of the small app's inputs
            conn.execute(text("SET hnsw.ef_search = 70"))
            walked = conn.execute(text(f"SELECT id FROM inputs WHERE app_id = 'small' ORDER BY {graph.order} "
                                       "LIMIT 70"), {"q": unit(small[0])}).all()
        assert len(walked) < 25
        found = store.nearest("small", small[0], 25, None)
        assert sorted(found, key=lambda p: -p[1])[:10] == [
            (i, pytest.approx(s, abs=1e-5)) for i, s in _exact_scored(small, small[0], 10)]
        assert len(found) == 25
    finally:
        core.close()


def _exact_scored(vectors: np.ndarray, query: np.ndarray, k: int) -> list[tuple[str, float]]:
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = unit @ (query / np.linalg.norm(query))
    return [(f"v{i}", float(sims[i])) for i in np.argsort(-sims)[:k]]


# -- starting ----------------------------------------------------------------------------------

def test_pgvector_on_sqlite_is_refused_at_start(tmp_path: Path, runtime: ModelRuntime) -> None:
    with pytest.raises(SettingsError, match="VISIONLOOP_VECTOR_STORE=pgvector needs PostgreSQL"):
        _core(tmp_path, "lite", "", runtime, vector_store="pgvector")


def test_a_server_without_the_extension_refuses_to_start_with_pgvector(tmp_path: Path, pg_server: Any) -> None:
    server = pgserver.start(without_extensions=("vector",))
    try:
        pgserver.execute_autocommit(server, "CREATE DATABASE plain")
        done = subprocess.run([sys.executable, "-m", "visionloop", "serve", "--port", "1", "--data-dir",
                               str(tmp_path / "data"), "--database-url", server.url("plain")],
                              cwd=REPO_ROOT, env=clean_env(VISIONLOOP_VECTOR_STORE="pgvector"), capture_output=True,
                              text=True, timeout=120)
    finally:
        server.stop()
    assert done.returncode == 2, done.stderr
    assert "VISIONLOOP_VECTOR_STORE=pgvector: this PostgreSQL server has no pgvector extension" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_copy_into_the_vector_column_resumes_after_an_interruption(
        tmp_path: Path, pg_url: str, runtime: ModelRuntime, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    embedded = _core(tmp_path, "embedded", pg_url, runtime)  # an install from before pgvector
    with TestClient(create_app(embedded.settings, embedded), raise_server_exceptions=False) as client:
        api = make_api(embedded, client, "shop")
        _add(api, 12)
        want = _hits(api, QUERIES[0])
    embedded.close()

    monkeypatch.setattr(pg_vectors, "BACKFILL_BATCH", 5)
    monkeypatch.setattr(pg_vectors, "BULK_ROWS", 5)  # a large first copy: the index is built after it
    calls: list[tuple[int, int]] = []

    def interrupt(done: int, total: int) -> None:
        calls.append((done, total))
        raise KeyboardInterrupt  # the process stops after the first batch

    first = _core(tmp_path, "first", pg_url, runtime)
    store = PgVectorStore(first.db, EMBEDDING_SPACE, EMBEDDING_DIM)
    with pytest.raises(KeyboardInterrupt):
        store.prepare(interrupt)
    first.close()
    assert calls == [(5, 12)]
    assert _graphs(first) == set()  # stopped before the index was built again

    pg = _core(tmp_path, "pg", pg_url, runtime, vector_store="pgvector")  # copies the rest, then serves
    try:
        assert "copying embeddings into pgvector: 7/7 (100%)" in capsys.readouterr().err
        with pg.db.session() as s:
            assert s.scalar(text("SELECT count(*) FROM inputs WHERE embedding IS NULL")) == 0
        assert _graphs(pg) == {half_graph(EMBEDDING_DIM).name}
        with TestClient(create_app(pg.settings, pg), raise_server_exceptions=False) as client:
            got = _hits(Api(client, api.key, "shop"), QUERIES[0])
        assert [i for i, _ in got] == [i for i, _ in want]
        assert np.allclose([s for _, s in got], [s for _, s in want], atol=1e-5)
    finally:
        pg.close()


def test_vectors_migrate_fills_the_column_from_the_command_line(tmp_path: Path, pg_url: str,
                                                                 runtime: ModelRuntime) -> None:
    embedded = _core(tmp_path, "embedded", pg_url, runtime)
    with TestClient(create_app(embedded.settings, embedded), raise_server_exceptions=False) as client:
        _add(make_api(embedded, client, "shop"), 3)
    embedded.close()
    done = subprocess.run([sys.executable, "-m", "visionloop", "vectors", "migrate", "--database-url", pg_url,
                           "--data-dir", str(tmp_path / "cli")], cwd=REPO_ROOT, env=clean_env(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "copying embeddings into pgvector: 3/3 (100%)" in done.stderr
    assert "pgvector holds every stored embedding (3 copied now)" in done.stdout


def test_an_install_from_before_keeps_its_graph_until_migrate_replaces_it(
        tmp_path: Path, pg_url: str, runtime: ModelRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The full-precision graph stays what searches walk until the half-precision one is built beside
    it (concurrently; again after an interrupted build); the scores stay full precision throughout."""
    monkeypatch.setattr(pg_vectors, "EXACT_ROWS", 0)
    monkeypatch.setattr(pg_vectors, "DETECT_SECONDS", 0.0)
    half = half_graph(EMBEDDING_DIM).name
    rng = np.random.default_rng(5)
    vectors = _clusters(rng, 200)
    first = _core(tmp_path, "first", pg_url, runtime, vector_store="pgvector")
    _use(first, FULL)  # what an install from before has
    _store_with(first, {"shop": vectors})
    first.close()
    core = _core(tmp_path, "pg", pg_url, runtime, vector_store="pgvector")
    try:
        store = core.indexes
        assert isinstance(store, PgVectorStore)
        assert _graphs(core) == {FULL.name}
        want = _exact_scored(vectors, vectors[3], 10)

        def top() -> list[tuple[str, Any]]:
            return sorted(store.nearest("shop", vectors[3], 10, None), key=lambda p: -p[1])[:10]

        assert top() == [(i, pytest.approx(s, abs=1e-5)) for i, s in want]
        assert store.adopt_half_precision() is True
        assert _graphs(core) == {half}
        assert top() == [(i, pytest.approx(s, abs=1e-5)) for i, s in want]
        assert store.adopt_half_precision() is False  # nothing left to replace

        _use(core, FULL)  # again, with a build that was interrupted: it left an invalid index
        with core.db.engine.begin() as conn:
            conn.execute(text(half_graph(EMBEDDING_DIM).create()))
            conn.execute(text(f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{half}'::regclass"))
        assert top() == [(i, pytest.approx(s, abs=1e-5)) for i, s in want]  # the valid one, the full graph
        assert store.adopt_half_precision() is True
        with core.db.engine.connect() as conn:
            assert conn.scalar(text(f"SELECT indisvalid FROM pg_index WHERE indexrelid = '{half}'::regclass"))
        assert _graphs(core) == {half}
    finally:
        core.close()


def test_a_search_after_the_server_dropped_its_connections_answers(
        tmp_path: Path, pg_url: str, runtime: ModelRuntime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The search connections are not pinged before use (a round trip per search): a search that
    meets a connection the server closed is run again on a new one."""
    monkeypatch.setattr(pg_vectors, "EXACT_ROWS", 0)
    vectors = _clusters(np.random.default_rng(9), 30)
    core = _core(tmp_path, "pg", pg_url, runtime, vector_store="pgvector")
    try:
        store = _store_with(core, {"shop": vectors})
        want = store.nearest("shop", vectors[1], 5, None)
        with core.db.engine.connect() as conn:  # as a restart of the server would
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        assert store.nearest("shop", vectors[1], 5, None) == want
    finally:
        core.close()


def test_a_search_path_in_the_database_url_holds_for_the_search_connections_too(
        tmp_path: Path, pg_server: Any, runtime: ModelRuntime) -> None:
    """The tables in a schema of their own, named by libpq's ``options`` in the database URL: the
    search connections, which set options of their own, keep it (a visual search answers)."""
    import psycopg

    pgserver.execute_autocommit(pg_server, "CREATE DATABASE schemed")
    with psycopg.connect(pg_server.dsn("schemed"), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA vl")
    core = _core(tmp_path, "pg", pg_server.url("schemed") + "?options=-csearch_path%3Dvl", runtime,
                 vector_store="pgvector")
    try:
        with TestClient(create_app(core.settings, core), raise_server_exceptions=False) as client:
            api = make_api(core, client, "shop")
            _add(api, 3)
            assert _hits(api, QUERIES[0])[0] == ("in-0", pytest.approx(1.0, abs=1e-5))
    finally:
        core.close()
