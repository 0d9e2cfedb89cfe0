"""Content-addressed blob store: image bytes filed under their SHA-256, written atomically."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes, digest: str | None = None) -> str:
        """Store bytes (idempotent) and return their digest; durable before returning. ``digest``:
        the bytes' SHA-256 when the caller has it already (a checked image does; hashing a phone
        photo again costs ~2.5 ms)."""
        digest = digest or digest_of(data)
        self._write(self._path(digest), data)
        return digest

    def put_derived(self, digest: str, kind: str, data: bytes) -> None:
        """Store what was made from blob ``digest`` (``kind``: what, e.g. ``thumb256``) beside it."""
        self._write(self._derived_path(digest, kind), data)

    def get_derived(self, digest: str, kind: str) -> bytes | None:
        """What :meth:`put_derived` stored for blob ``digest``, or None when nothing was yet."""
        try:
            return self._derived_path(digest, kind).read_bytes()
        except FileNotFoundError:
            return None

    def _derived_path(self, digest: str, kind: str) -> Path:
        if not kind.isalnum():
            raise ValueError(f"a derived blob's kind is letters and digits, got {kind!r}")
        return self._path(digest).with_name(f"{digest}.{kind}")

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
        return self._path(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()
