"""Export feedback records for audit and use elsewhere: JSON Lines always, Parquet with pyarrow.

A record is :func:`visionloop.services.feedback.log.record_of` (the same object ``GET
/v2/feedback`` lists). In Parquet, ``data`` and ``raw`` are JSON text columns and every other
field is a plain column, so any dataframe tool reads it without knowing the nested shapes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

FORMATS = ("jsonl", "parquet")
COLUMNS = ("id", "app_id", "event_type", "created_at", "model_id", "model_deleted", "version_id", "output_id",
           "search_id", "input_id", "rank", "end_user_id", "session_id", "key_id", "unlinked", "data", "raw")
_TYPES = {"rank": "int64", "model_deleted": "bool_", "unlinked": "bool_"}  # the others are text
PARQUET_BATCH = 10_000


class ExportError(Exception):
    """An export that cannot be written (e.g. Parquet without pyarrow); the message says what to do."""


def jsonl_lines(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Each record as one line of JSON (what a download streams)."""
    for record in records:
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"


def write_jsonl(records: Iterable[dict[str, Any]], out: IO[str]) -> int:
    n = 0
    for line in jsonl_lines(records):
        out.write(line)
        n += 1
    return n


def write_parquet(records: Iterable[dict[str, Any]], path: Path) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError("Parquet export needs pyarrow: pip install 'visionloop[parquet]' (or use --format jsonl)") \
            from None
    schema = pa.schema([(c, getattr(pa, _TYPES.get(c, "string"))()) for c in COLUMNS])
    n = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        batch: list[dict[str, Any]] = []
        for record in records:
            batch.append({c: json.dumps(record[c], ensure_ascii=False) if c in ("data", "raw") else record[c]
                          for c in COLUMNS})
            if len(batch) >= PARQUET_BATCH:
                writer.write_table(pa.Table.from_pylist(batch, schema=schema))
                n += len(batch)
                batch = []
        if batch or n == 0:
            writer.write_table(pa.Table.from_pylist(batch, schema=schema))
            n += len(batch)
    return n
