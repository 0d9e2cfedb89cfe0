"""Delete the images no row refers to any more, in either blob store, safely across processes.

Blobs are content-addressed, so one blob may be the image of several inputs (of several apps), of
stored predictions and, in principle, a model artefact. A digest is **referenced** while an input
(``inputs.digest``), a stored output (``outputs.digest``) or a model version
(``model_versions.artifact_digest``) names it. Search hits and feedback events also record digests,
but only as what was shown or judged: they do not keep an image (searches are never pruned, so they
would keep every image ever shown), and an image they name that is gone reads as absent.

**The race.** Writers store a blob *before* the row that names it commits (so no row ever names a
missing blob), and storing is idempotent: a second writer of the same bytes finds them there. So a
collector that checks "no row names D" and then deletes D can delete the bytes a writer in another
process has just stored (or found already there) and is about to name in a row it has not committed
yet; a grace period only narrows that window. Instead both sides check again after the other
side's step could have happened, and each holds the bytes to put them back:

- the collector (:meth:`BlobCollector.collect`): checks that nothing refers to D, reads D's bytes,
  deletes D, **checks again**, and puts the bytes back if a row now names D;
- a writer (:func:`visionloop.services.images.still_kept`): puts D, commits its row, then **checks
  that D exists** and puts it again if not (a stat on a folder, a HEAD on S3).

A writer whose row committed before the collector's second check is seen by it (the collector puts
the bytes back); one that committed after it checks after that, when the deletion has happened, and
finds D missing (the writer puts it back). No clock, lock or extra table is needed, and two
collectors of one digest are harmless (the second finds nothing to read). What it costs: the
writer's one existence check per image, and, in that rare race, a moment in which the blob of a
just-committed row is missing (a read then answers 30002 and the next succeeds). It loses an image
only if the store takes the collector's delete and then refuses its put-back, in that same race.

**Failures.** The rows are deleted first and committed; the blobs after. A store that refuses a
delete, or a process that dies in between, leaves an unreferenced blob and loses nothing: the
sweep (:meth:`BlobCollector.sweep`, ``visionloop blobs sweep``) lists the store and collects every
blob no row names, which also removes the blobs of uploads whose rows never committed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from sqlalchemy import select

from visionloop.store.blobs import BlobMissing, BlobStore, BlobUnavailable
from visionloop.store.db import Database
from visionloop.store.tables import Input, ModelVersion, Output

log = logging.getLogger(__name__)

CHUNK = 100  # digests per round: the collector holds their bytes until its second check

_REFERENCES = (Input.digest, Output.digest, ModelVersion.artifact_digest)


class BlobCollector:
    def __init__(self, db: Database, blobs: BlobStore) -> None:
        self.db = db
        self.blobs = blobs

    def referenced(self, digests: Iterable[str]) -> set[str]:
        """Which of ``digests`` a committed row names (one indexed lookup per table)."""
        wanted = sorted(set(digests))
        if not wanted:
            return set()
        with self.db.session() as s:
            return {d for column in _REFERENCES for d in s.scalars(select(column).where(column.in_(wanted)).distinct())
                    if d is not None}

    def collect(self, digests: Iterable[str]) -> int:
        """Delete those of ``digests`` no row names (call it after the commit that deleted the rows);
        returns how many were deleted. Never raises for the store: what it could not delete stays
        for the sweep."""
        todo = sorted(set(digests))
        deleted = 0
        for start in range(0, len(todo), CHUNK):
            deleted += self._collect(todo[start:start + CHUNK])
        return deleted

    def _collect(self, digests: list[str]) -> int:
        held: dict[str, bytes] = {}
        for digest in sorted(set(digests) - self.referenced(digests)):
            try:
                data = self.blobs.get(digest)
                self.blobs.delete(digest)
            except BlobMissing:
                continue  # gone already (another collector, or never stored here)
            except BlobUnavailable as exc:
                log.warning("blob %s is no longer referenced but stays (the sweep will retry): %s", digest, exc)
                continue
            held[digest] = data
        for digest in self.referenced(held):  # named again meanwhile: a writer's row committed in between
            try:
                self.blobs.put(held.pop(digest), digest)
            except BlobUnavailable:  # the one way this loses an image: the store took the delete, not the put
                log.exception("blob %s was deleted as a row came to name it and could not be put back", digest)
        return len(held)

    def sweep(self, older_than_s: float, progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
        """Collect every stored blob no row names, of those last written more than ``older_than_s``
        seconds ago (an artefact being trained is stored some time before its version row names it);
        returns (deleted, kept)."""
        stored = sorted(self.blobs.digests(before=time.time() - older_than_s))
        deleted = 0
        for start in range(0, len(stored), CHUNK):
            deleted += self._collect(stored[start:start + CHUNK])
            if progress is not None:
                progress(min(start + CHUNK, len(stored)), len(stored))
        return deleted, len(stored) - deleted
