"""Content-addressed blob stores: image bytes (and model artefacts) filed under their SHA-256.

Two implementations of one interface, chosen by ``VISIONLOOP_BLOB_STORE``: :class:`FileBlobStore`
(files under ``DATA_DIR/blobs``, the default) and :class:`visionloop.store.s3_blobs.S3BlobStore`
(an S3-compatible bucket that processes on several machines share). A blob is written before any
row names it and never changed, so a reader that finds the row finds the bytes; it is deleted only
once no row names it (:mod:`visionloop.services.blob_gc`). A blob that is gone anyway (a folder not
shared, an object deleted by hand) raises :class:`BlobMissing`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobMissing(LookupError):
    """No blob is stored under this digest (or it cannot be read)."""


class BlobUnavailable(OSError):
    """The store could not take a blob (unreachable, refused): nothing may name it."""


class BlobStore(Protocol):
    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store bytes (idempotent) and return their digest; durable before returning. ``digest``:
        the bytes' SHA-256 when the caller has it already (a checked image does; hashing a phone
        photo again costs ~2.5 ms)."""

    def get(self, digest: str) -> bytes:
        """The bytes; :class:`BlobMissing` when there are none."""

    def exists(self, digest: str) -> bool: ...

    def delete(self, digest: str) -> None:
        """Forget a blob and what was derived from it (absent ones are ignored); only
        :class:`visionloop.services.blob_gc.BlobCollector` calls it, once no row names the digest.
        :class:`BlobUnavailable` when the store refused: the blob stays, for a later sweep."""

    def digests(self, before: float | None = None) -> Iterator[str]:
        """Every stored blob's digest; ``before``: only those written (or last rewritten) before
        this Unix time."""

    def put_derived(self, digest: str, kind: str, data: bytes) -> None:
        """Store what was made from blob ``digest`` (``kind``: what, e.g. ``thumb256``) beside it."""

    def get_derived(self, digest: str, kind: str) -> bytes | None:
        """What :meth:`put_derived` stored for blob ``digest``, or None when nothing was yet."""


def blob_key(digest: str) -> str:
    """Where a blob lives below the store's root: two levels of fan-out keep folders small."""
    return f"{digest[:2]}/{digest[2:4]}/{digest}"


def derived_name(digest: str, kind: str) -> str:
    """The name of what was made from a blob, beside it (``kind``: letters and digits)."""
    if not kind.isalnum():
        raise ValueError(f"a derived blob's kind is letters and digits, got {kind!r}")
    return f"{blob_key(digest)}.{kind}"


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        return self.root / blob_key(digest)

    def put(self, data: bytes, digest: str | None = None) -> str:
        digest = digest or digest_of(data)
        self._write(self._path(digest), data)
        return digest

    def put_derived(self, digest: str, kind: str, data: bytes) -> None:
        self._write(self.root / derived_name(digest, kind), data)

    def get_derived(self, digest: str, kind: str) -> bytes | None:
        try:
            return (self.root / derived_name(digest, kind)).read_bytes()
        except FileNotFoundError:
            return None

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        """Write ``path`` atomically and durably, unless it exists (its content is its name's)."""
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, digest: str) -> bytes:
        try:
            return self._path(digest).read_bytes()
        except OSError as exc:
            raise BlobMissing(f"blob {digest} cannot be read: {exc.strerror or exc}") from exc

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def delete(self, digest: str) -> None:
        path = self._path(digest)
        try:
            for derived in path.parent.glob(f"{digest}.*"):
                derived.unlink(missing_ok=True)
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise BlobUnavailable(f"blob {digest} could not be deleted: {exc.strerror or exc}") from exc

    def digests(self, before: float | None = None) -> Iterator[str]:
        """Files being written are not blobs yet."""
        for path in self.root.glob("??/??/*"):
            if not path.name.startswith(".tmp-") and "." not in path.name:  # not a thumbnail beside it
                try:
                    if before is None or path.stat().st_mtime < before:
                        yield path.name
                except FileNotFoundError:  # deleted since the listing
                    continue


def copy_blobs(source: FileBlobStore, target: BlobStore,
               progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Copy every blob of a folder into another store, skipping those it has (so a copy that was
    stopped resumes cheaply); returns (copied, already there)."""
    digests = sorted(source.digests())
    copied = present = 0
    for n, digest in enumerate(digests, 1):
        if target.exists(digest):
            present += 1
        else:
            target.put(source.get(digest), digest)
            copied += 1
        if progress is not None:
            progress(n, len(digests))
    return copied, present
