"""Where visual search finds similar inputs: one interface, two stores (``VISIONLOOP_VECTOR_STORE``).

- ``embedded`` (:class:`visionloop.store.app_indexes.AppIndexes`): an in-memory index per app and
  process, built from the stored embeddings and kept current by polling the app's generation.
- ``pgvector`` (:class:`visionloop.store.pg_vectors.PgVectorStore`): a ``vector`` column of the
  inputs table with an HNSW index in PostgreSQL, written in the input's own transaction, so every
  process searches exactly what is committed and holds no copy.

The raw features stay in the ``embeddings`` table either way (training, the click memory and exact
scans over a few candidates read them); a store holds the unit embeddings it searches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from sqlalchemy.orm import Session


class VectorStore(Protocol):
    def write(self, s: Session, app_id: str, rows: Sequence[tuple[str, np.ndarray]]) -> None:
        """Store (input id, unit embedding) pairs in the transaction that adds the inputs."""

    def add(self, app_id: str, items: Sequence[tuple[str, str]], vectors: np.ndarray, generation: int) -> None:
        """After the commit that added (input id, image digest) pairs and set the app's generation."""

    def remove(self, app_id: str, input_ids: Sequence[str], generation: int) -> None:
        """After the commit that deleted inputs and set the app's generation."""

    def nearest(self, app_id: str, query: np.ndarray, need: int,
                within: set[str] | None) -> list[tuple[str, float]]:
        """At least the ``need`` inputs (of ``within``, if given) most similar to ``query``, with their
        cosine similarity, in any order; a margin beyond ``need`` lets the caller break ties by id."""

    def close(self) -> None: ...
