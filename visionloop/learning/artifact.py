"""Fitted models as bytes: an ``.npz`` of arrays plus JSON metadata, never a pickle.

Every estimator stores its artefact the same way, so one pair of functions writes and reads it;
``meta["format"]`` names the estimator and its version, checked on reading.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

import numpy as np


def pack(meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> bytes:
    """``meta`` (JSON-ready, with its ``format``) and the named arrays, compressed."""
    stored: dict[str, Any] = {"meta": np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **stored)
    return buffer.getvalue()


def unpack(data: bytes, fmt: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(meta, arrays) of an artefact :func:`pack` wrote; ``ValueError`` if it is not of ``fmt``."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        meta: dict[str, Any] = json.loads(archive["meta"].tobytes().decode())
        if meta.get("format") != fmt:
            raise ValueError(f"not a {fmt} artifact: {meta.get('format')!r}")
        return meta, {k: archive[k] for k in archive.files if k != "meta"}
