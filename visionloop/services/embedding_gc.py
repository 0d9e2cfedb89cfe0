"""Delete the stored embeddings nothing needs any more, safely across processes.

The ``embeddings`` table holds an image's raw backbone features once per content digest, whoever
computed them: adding an input, a predict (:mod:`visionloop.services.predict`), a visual search by
image (:mod:`visionloop.services.search`). Its readers, and the rows through which each finds a digest:

=========================================  ==================================================================
reader                                     finds digests through
=========================================  ==================================================================
visual search, the vector indexes,         ``inputs.digest`` (joined on it; an input without an embedding
pgvector's copy, monitoring figures,       is left out of the index and its search)
the click memory's and the learned
ranking's hit vectors
training a concept model                   the feedback log (``feedback_events.digest``: the judged output's
(:mod:`.training.data`)                    image, an unlinked event's input or base64 image, a clicked hit's
                                           image) and ``inputs.digest`` (the app's annotations)
the drift alarm (:mod:`.monitoring`)       ``outputs.digest`` (traffic windows) and the feedback log (the
                                           reference: the active version's training images)
the click memory (query vectors) and       ``search_query_images.digest`` and ``search_hits.digest`` of
learning a ranking from clicks             searches with a click in the feedback log
=========================================  ==================================================================

Model versions keep no digests of their own: what a version learned from is in the log, the
inputs and the clicked searches above, so it is covered by them. A digest is therefore
**needed** while an input (of any app) or an output names it, a feedback event names it, or a
search names it as a query image or a hit and either has a click in the log or is younger than
``output_retention_days`` (its clicks may still come; 0: every search counts). Anything else is
traffic the retention let go: :meth:`EmbeddingCollector.collect` deletes it after outputs are
pruned, inputs deleted or feedback erased, and :meth:`EmbeddingCollector.sweep` (``visionloop
embeddings sweep``) after a failure or once unclicked searches age past the horizon.

**The race** is the blob collector's (:mod:`visionloop.services.blob_gc`): a writer may find an
image's embedding stored (so it inserts none) just before a collector deletes it, then commit a
row that needs it. Both sides check again: the collector deletes the rows (holding them), **checks
again** and puts back those a row came to need; a writer
(:func:`visionloop.services.predict.still_stored`), after its commit, checks that its images'
embeddings are there and inserts the missing ones, which it still holds. A writer that committed
before the collector's second check is seen by it; one that committed after it checks after the
deletion. In that rare window a reader may miss the embedding, and degrades: an input is left
out of a rebuilt index, a remembered query is not counted by the click memory, the drift check
skips a round, a visual search by that input's id answers 30102 for that moment. No clock,
lock or extra table is needed, and two collectors of one digest are harmless.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, or_, select, true

from visionloop.learning.vocabulary import EventType
from visionloop.store.db import Database, insert_missing
from visionloop.store.tables import (
    Embedding,
    FeedbackEvent,
    Input,
    Output,
    Search,
    SearchHit,
    SearchQueryImage,
    utcnow,
)

CHUNK = 100  # digests per round: the collector holds their rows until its second check


class EmbeddingCollector:
    def __init__(self, db: Database, *, retention_days: int) -> None:
        self.db = db
        self.retention_days = retention_days

    def referenced(self, digests: Iterable[str]) -> set[str]:
        """Which of ``digests`` something still needs (the module docstring lists what); each check
        asks only about the digests the earlier ones left, on an index of its table."""
        wanted = set(digests)
        left = set(wanted)
        with self.db.session() as s:
            for column, query in self._references():
                if left:
                    left -= set(s.scalars(query.where(column.in_(sorted(left))).distinct()))
        return wanted - left

    def _references(self) -> list[tuple[Any, Select[str | None]]]:
        """(digest column, query of its needed digests), the most common reference first."""
        out: list[tuple[Any, Select[str | None]]] = [
            (column, select(column)) for column in (Input.digest, Output.digest, FeedbackEvent.digest)]
        for column, search_id in ((SearchQueryImage.digest, SearchQueryImage.search_id),
                                  (SearchHit.digest, SearchHit.search_id)):
            out.append((column, select(column).join(Search, Search.id == search_id).where(self._remembered(search_id))))
        return out

    def _remembered(self, search_id: Any) -> ColumnElement[bool]:
        """The search is clicked (its click is in the log) or young enough to be clicked still."""
        if self.retention_days <= 0:
            return true()
        clicked = select(FeedbackEvent.seq).where(FeedbackEvent.search_id == search_id,
                                                  FeedbackEvent.event_type == EventType.SEARCH_CLICK).exists()
        return or_(clicked, Search.created_at >= utcnow() - dt.timedelta(days=self.retention_days))

    def of_searches(self, search_ids: Iterable[str]) -> set[str]:
        """The query and hit images of these searches (what erasing their clicks may free)."""
        ids = sorted(set(search_ids))
        out: set[str] = set()
        with self.db.session() as s:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                out |= set(s.scalars(select(SearchQueryImage.digest).where(SearchQueryImage.search_id.in_(chunk))))
                out |= {d for d in s.scalars(select(SearchHit.digest).where(SearchHit.search_id.in_(chunk))) if d}
        return out

    def collect(self, digests: Iterable[str]) -> int:
        """Delete the embeddings of those of ``digests`` nothing needs (call it after the commit that
        deleted the rows naming them); returns how many images' embeddings went."""
        todo = sorted({d for d in digests if d})
        return sum(self._collect(todo[start:start + CHUNK]) for start in range(0, len(todo), CHUNK))

    def _collect(self, digests: list[str]) -> int:
        unneeded = sorted(set(digests) - self.referenced(digests))
        if not unneeded:
            return 0
        with self.db.transaction() as s:  # the rows it deletes are the rows it holds
            held = [{"digest": r.digest, "space": r.space, "vector": r.vector} for r in
                    s.execute(delete(Embedding).where(Embedding.digest.in_(unneeded))
                              .returning(Embedding.digest, Embedding.space, Embedding.vector)
                              .execution_options(synchronize_session=False))]
        needed = self.referenced({r["digest"] for r in held})  # a writer's row committed in between
        if needed:
            with self.db.transaction() as s:
                insert_missing(s, Embedding, [r for r in held if r["digest"] in needed], key=("digest", "space"))
        return len({r["digest"] for r in held} - needed)

    def sweep(self, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Collect every stored embedding nothing needs, in digest order; returns (deleted, kept)
        counted in images. Safe beside running servers: it is :meth:`collect` over the whole table."""
        with self.db.session() as s:
            total = s.scalar(select(func.count(Embedding.digest.distinct()))) or 0
        deleted, seen, after = 0, 0, ""
        while True:
            with self.db.session() as s:
                chunk = list(s.scalars(select(Embedding.digest).where(Embedding.digest > after).distinct()
                                       .order_by(Embedding.digest).limit(CHUNK)))
            if not chunk:
                return deleted, seen - deleted
            deleted += self._collect(chunk)
            seen, after = seen + len(chunk), chunk[-1]
            if progress is not None:
                progress(min(seen, total), max(total, seen))

