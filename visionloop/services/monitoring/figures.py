"""Figures the monitoring endpoint reads from the database at scrape time (GET /metrics).

They describe the whole server, not one process: every process of a server reads the same ones.
Each is one aggregate query, bounded in the rows it returns.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import func, select

from visionloop import status
from visionloop.services.short_cache import ShortCache
from visionloop.store.db import Database
from visionloop.store.tables import ActiveVersion, Embedding, Input, Model, ModelVersion

# The most (app, model) pairs exposed with their active version, the most recently changed first:
# a label set per pair, so a server with more apps than this shows only the latest promotions.
ACTIVE_VERSIONS_SHOWN = 500
# The apps whose index sizes are shown, the largest first (a label value each), and how long one count
# of them serves scrapes: it joins every input to the embeddings, too much for every scrape.
INDEX_SIZES_SHOWN = 500
INDEX_SIZES_SECONDS = 60.0
_UNFINISHED = {status.MODEL_QUEUED_FOR_TRAINING: "queued", status.MODEL_TRAINING: "training"}


@dataclasses.dataclass(frozen=True)
class Activation:
    app_id: str
    model_id: str
    version_id: str
    by_hand: bool


class MonitoringService:
    def __init__(self, db: Database, embedding_space: str) -> None:
        self.db = db
        self.space = embedding_space
        self._sizes: ShortCache[dict[str, int]] = ShortCache(ttl=INDEX_SIZES_SECONDS, max_entries=1)

    def active_versions(self, limit: int = ACTIVE_VERSIONS_SHOWN) -> list[Activation]:
        """The versions apps chose or promoted (an app predicting with a base version has no row;
        deleting a model deletes its rows)."""
        query = (select(ActiveVersion.app_id, Model.id, ActiveVersion.version_id, ActiveVersion.by_hand)
                 .join(Model, Model.pk == ActiveVersion.model_pk)
                 .order_by(ActiveVersion.modified_at.desc()).limit(limit))
        with self.db.reading() as c:
            return [Activation(*row) for row in c.execute(query)]

    def index_sizes(self) -> dict[str, int]:
        """Entries of the largest apps' visual search indexes (their inputs with a stored image and
        embedding), counted at most once per ``INDEX_SIZES_SECONDS``."""
        return self._sizes.get(None, self._count_index_sizes)

    def _count_index_sizes(self) -> dict[str, int]:
        entries = func.count().label("entries")
        query = (select(Input.app_id, entries)
                 .join(Embedding, (Embedding.digest == Input.digest) & (Embedding.space == self.space))
                 .group_by(Input.app_id).order_by(entries.desc(), Input.app_id).limit(INDEX_SIZES_SHOWN))
        with self.db.reading() as c:
            return {app_id: int(n) for app_id, n in c.execute(query)}

    def unfinished_training(self) -> dict[str, int]:
        """Versions queued or training now, across every process of the server."""
        query = (select(ModelVersion.status_code, func.count()).where(ModelVersion.status_code.in_(_UNFINISHED))
                 .group_by(ModelVersion.status_code))
        with self.db.reading() as c:
            counts = dict(c.execute(query).all())
        return {state: int(counts.get(code, 0)) for code, state in _UNFINISHED.items()}
