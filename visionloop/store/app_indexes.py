"""One visual-similarity index per app, kept in step with the database.

Each app's :class:`VectorIndex` lives under ``DATA_DIR/indexes/<app>``. It is loaded on first
use when its stamp (a digest of the app's input ids) matches the database, otherwise rebuilt
from the stored embeddings — so a crash between a database commit and an index save costs a
rebuild, never a wrong answer. Snapshots are written on close and after enough changes.

Several processes on one database each hold their own index. Every transaction that adds or
deletes inputs bumps the app's ``inputs_generation``; a process applies its own changes and
advances its generation when no one else's came in between. Before a search it compares
generations (one small query) and, if another process changed the app, catches up: it adds
the inputs it lacks and drops those gone.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from visionloop.store.db import Database
from visionloop.store.tables import App, Embedding, Input, input_has_image
from visionloop.store.vectors import IndexUnusable, VectorIndex, key_for

SAVE_EVERY = 2000  # changes between snapshots


class AppIndex:
    """An app's index plus the key -> (input id, image digest) map the index cannot hold itself,
    and the app's ``inputs_generation`` it reflects."""

    def __init__(self, index: VectorIndex, ids: dict[int, tuple[str, str]], generation: int) -> None:
        self.index = index
        self.ids = ids
        self.generation = generation
        self.changes = 0

    def search(self, query: np.ndarray, k: int, *, exact: bool = False) -> list[tuple[str, float]]:
        keys, scores = self.index.search(query, k, exact=exact)
        return [(self.ids[int(key)][0], float(score)) for key, score in zip(keys, scores) if int(key) in self.ids]


class AppIndexes:
    """The ``embedded`` :class:`~visionloop.store.vector_store.VectorStore`."""

    def __init__(self, db: Database, root: Path, space: str, dim: int) -> None:
        self.db = db
        self.root = root
        self.space = space
        self._embedded = select(Input.id, Embedding.digest, Embedding.vector).join(
            Embedding, (Embedding.digest == Input.digest) & (Embedding.space == space))
        self.dim = dim
        self._apps: dict[str, AppIndex] = {}
        self._lock = threading.Lock()

    def get(self, app_id: str) -> AppIndex:
        """The app's index, caught up with what other processes changed since it last looked."""
        current = self.generation(app_id)
        with self._lock:
            app = self._apps.get(app_id)
            if app is None:
                app = self._apps[app_id] = self._open(app_id, current)
            elif app.generation != current:
                self._catch_up(app_id, app, current)
            return app

    def generation(self, app_id: str) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(App.inputs_generation).where(App.id == app_id)) or 0)

    def _cached(self, app_id: str) -> AppIndex:
        with self._lock:
            if app_id not in self._apps:
                self._apps[app_id] = self._open(app_id, self.generation(app_id))
            return self._apps[app_id]

    def _path(self, app_id: str) -> Path:
        return self.root / hashlib.sha256(app_id.encode()).hexdigest()[:32]

    def _open(self, app_id: str, generation: int) -> AppIndex:
        """Load or build the index; ``generation`` must be read before the inputs are."""
        with self.db.session() as s:
            rows = s.execute(self._embedded.where(Input.app_id == app_id)).all()
        ids = {key_for(input_id): (input_id, digest) for input_id, digest, _ in rows}
        stamp = _stamp(ids)
        try:
            index = VectorIndex.load(self._path(app_id), stamp=stamp)
        except IndexUnusable:
            index = VectorIndex(self.dim)
            if rows:
                index.add(np.fromiter(ids, dtype=np.uint64, count=len(ids)),
                          np.stack([np.frombuffer(v, dtype="<f4") for _, _, v in rows]))
            index.save(self._path(app_id), stamp=stamp)
        return AppIndex(index, ids, generation)

    def _catch_up(self, app_id: str, app: AppIndex, generation: int) -> None:
        """Add the inputs the index lacks and drop those gone (``generation`` read before this)."""
        with self.db.session() as s:
            stored = {key_for(i): (i, d) for i, d in s.execute(select(Input.id, Input.digest)
                                                                .where(Input.app_id == app_id, input_has_image()))}
            lacking = [stored[k][0] for k in stored.keys() - app.ids.keys()]
            rows = [r for lo in range(0, len(lacking), 500)
                    for r in s.execute(self._embedded.where(Input.app_id == app_id, Input.id.in_(lacking[lo:lo + 500])))]
        gone = list(app.ids.keys() - stored.keys())
        if gone:
            app.index.remove(np.array(gone, dtype=np.uint64))
            for k in gone:
                del app.ids[k]
        if rows:
            keys = np.array([key_for(i) for i, _, _ in rows], dtype=np.uint64)
            app.index.add(keys, np.stack([np.frombuffer(v, dtype="<f4") for _, _, v in rows]))
            app.ids.update((int(k), (i, d)) for k, (i, d, _) in zip(keys, rows))
        app.generation = generation
        self._changed(app_id, app, len(gone) + len(rows))

    def write(self, s: Session, app_id: str, rows: Sequence[tuple[str, np.ndarray]]) -> None:
        """Nothing to write in the database: :meth:`add` indexes the inputs once they are committed."""

    def nearest(self, app_id: str, query: np.ndarray, need: int,
                within: set[str] | None) -> list[tuple[str, float]]:
        """Small indexes answer exactly over everything; large ones over a margin past the page."""
        app = self.get(app_id)
        size = len(app.ids)
        k = size if size <= app.index.exact_threshold else (need if within is None else need * 8) * 2 + 50
        found = app.search(query, k)
        return found if within is None else [(i, sc) for i, sc in found if i in within]

    def add(self, app_id: str, items: Sequence[tuple[str, str]], vectors: np.ndarray, generation: int) -> None:
        """Index (input id, image digest) pairs with their embeddings, added by the transaction
        that set the app's generation to ``generation``."""
        if not items:
            return
        app = self._cached(app_id)
        keys = np.array([key_for(input_id) for input_id, _ in items], dtype=np.uint64)
        app.index.add(keys, vectors)
        app.ids.update(zip((int(k) for k in keys), items))
        self._advance(app, generation)
        self._changed(app_id, app, len(items))

    def remove(self, app_id: str, input_ids: Sequence[str], generation: int) -> None:
        app = self._cached(app_id)
        keys = [key_for(i) for i in input_ids]
        app.index.remove(np.array(keys, dtype=np.uint64))
        for k in keys:
            app.ids.pop(k, None)
        self._advance(app, generation)
        self._changed(app_id, app, len(keys))

    def _advance(self, app: AppIndex, generation: int) -> None:
        """Our change is the next one: the index is current (else a later search catches up)."""
        with self._lock:
            if app.generation == generation - 1:
                app.generation = generation

    def _changed(self, app_id: str, app: AppIndex, n: int) -> None:
        app.changes += n
        if app.changes >= SAVE_EVERY:
            self.save(app_id)

    def save(self, app_id: str) -> None:
        app = self._apps.get(app_id)
        if app is not None and app.changes:
            app.index.save(self._path(app_id), stamp=_stamp(app.ids))
            app.changes = 0

    def close(self) -> None:
        for app_id in list(self._apps):
            self.save(app_id)


def bump_generation(s: Session, app_id: str) -> int:
    """Count one more change to the app's inputs, in the caller's transaction; returns the new value."""
    return int(s.execute(update(App).where(App.id == app_id).values(inputs_generation=App.inputs_generation + 1)
                         .returning(App.inputs_generation)).scalar_one())


def _stamp(ids: dict[int, tuple[str, str]]) -> str:
    """An order-free digest of the indexed (input id, image digest) pairs."""
    acc = 0
    for input_id, digest in ids.values():
        acc ^= key_for(f"{input_id}\0{digest}")
    return f"{len(ids)}-{acc:016x}"
