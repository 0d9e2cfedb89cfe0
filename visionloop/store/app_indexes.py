"""One visual-similarity index per app, kept in step with the database.

Each app's :class:`VectorIndex` lives under ``DATA_DIR/indexes/<app>``. It is loaded on first
use when its stamp (a digest of the app's input ids) matches the database, otherwise rebuilt
from the stored embeddings — so a crash between a database commit and an index save costs a
rebuild, never a wrong answer. Snapshots are written on close and after enough changes.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sqlalchemy import select

from visionloop.store.db import Database
from visionloop.store.tables import Embedding, Input
from visionloop.store.vectors import IndexUnusable, VectorIndex, key_for

SAVE_EVERY = 2000  # changes between snapshots


class AppIndex:
    """An app's index plus the key -> (input id, image digest) map the index cannot hold itself."""

    def __init__(self, index: VectorIndex, ids: dict[int, tuple[str, str]]) -> None:
        self.index = index
        self.ids = ids
        self.changes = 0

    def search(self, query: np.ndarray, k: int, *, exact: bool = False) -> list[tuple[str, float]]:
        keys, scores = self.index.search(query, k, exact=exact)
        return [(self.ids[int(key)][0], float(score)) for key, score in zip(keys, scores) if int(key) in self.ids]


class AppIndexes:
    def __init__(self, db: Database, root: Path, space: str, dim: int) -> None:
        self.db = db
        self.root = root
        self.space = space
        self.dim = dim
        self._apps: dict[str, AppIndex] = {}
        self._lock = threading.Lock()

    def get(self, app_id: str) -> AppIndex:
        with self._lock:
            if app_id not in self._apps:
                self._apps[app_id] = self._open(app_id)
            return self._apps[app_id]

    def _path(self, app_id: str) -> Path:
        return self.root / hashlib.sha256(app_id.encode()).hexdigest()[:32]

    def _open(self, app_id: str) -> AppIndex:
        with self.db.session() as s:
            rows = s.execute(select(Input.id, Input.digest, Embedding.vector)
                             .join(Embedding, (Embedding.digest == Input.digest) & (Embedding.space == self.space))
                             .where(Input.app_id == app_id)).all()
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
        return AppIndex(index, ids)

    def add(self, app_id: str, items: Sequence[tuple[str, str]], vectors: np.ndarray) -> None:
        """Index (input id, image digest) pairs with their embeddings."""
        if not items:
            return
        app = self.get(app_id)
        keys = np.array([key_for(input_id) for input_id, _ in items], dtype=np.uint64)
        app.index.add(keys, vectors)
        app.ids.update(zip((int(k) for k in keys), items))
        self._changed(app_id, app, len(items))

    def remove(self, app_id: str, input_ids: Sequence[str]) -> None:
        app = self.get(app_id)
        keys = [key_for(i) for i in input_ids]
        app.index.remove(np.array(keys, dtype=np.uint64))
        for k in keys:
            app.ids.pop(k, None)
        self._changed(app_id, app, len(keys))

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


def _stamp(ids: dict[int, tuple[str, str]]) -> str:
    """An order-free digest of the indexed (input id, image digest) pairs."""
    acc = 0
    for input_id, digest in ids.values():
        acc ^= key_for(f"{input_id}\0{digest}")
    return f"{len(ids)}-{acc:016x}"
