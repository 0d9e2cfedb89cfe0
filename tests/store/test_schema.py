"""The Alembic migrations build exactly the schema ``store/tables.py`` declares, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, String

from visionloop.core import VisionLoop
from visionloop.store.db import Database
from visionloop.store.migrate import alembic_config
from visionloop.store.tables import Base, url_key


def _compare_type(context: Any, inspected_column: Any, metadata_column: Any, inspected_type: Any,
                  metadata_type: Any) -> bool | None:
    """SQLite ignores VARCHAR widths, so a migration may leave them as they were there."""
    if context.dialect.name == "sqlite" and isinstance(inspected_type, String) and isinstance(metadata_type, String):
        return False
    return None  # Alembic's own comparison


def test_migrated_schema_matches_the_tables(core: VisionLoop) -> None:
    with core.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": _compare_type}),
                                Base.metadata)
    assert diff == []


@contextmanager
def _migrated_from(tmp_path: Path, revision: str, *rows_sql: str) -> Iterator[Connection]:
    """A database at ``revision`` holding an app and ``rows_sql``, upgraded to the newest schema
    (yielded), then downgraded back to ``revision``."""
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        command.upgrade(alembic_config(db.engine), revision)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO apps (id, name, created_at) VALUES ('a', 'A', '2026-01-01')")
            for sql in rows_sql:
                conn.exec_driver_sql(sql)
        command.upgrade(alembic_config(db.engine), "head")
        with db.engine.connect() as conn:
            yield conn
        command.downgrade(alembic_config(db.engine), revision)
    finally:
        db.dispose()


def test_migration_0008_backfills_the_name_keys_of_existing_concepts(tmp_path: Path) -> None:
    with _migrated_from(tmp_path, "0007", "INSERT INTO concepts (app_id, id, name, created_at, modified_at) VALUES "
                        "('a', 's', 'Straße', '2026-01-01', '2026-01-01'), "
                        "('a', 'e', 'ÉCLAIR', '2026-01-01', '2026-01-01')") as conn:
        keys = dict(conn.exec_driver_sql("SELECT id, name_key FROM concepts").all())
    assert keys == {"s": "strasse", "e": "éclair"}


def test_migration_0009_backfills_the_url_keys_of_existing_inputs(tmp_path: Path) -> None:
    inserts = [f"INSERT INTO inputs (app_id, id, digest, url, width, height, metadata, status_code, created_at, "
               f"modified_at) VALUES ('a', '{input_id}', 'd', {url}, 1, 1, '{{}}', 30000, '2026-01-01', '2026-01-01')"
               for input_id, url in (("u", "'https://x.test/cat.jpg'"), ("b", "NULL"))]
    with _migrated_from(tmp_path, "0008", *inserts) as conn:
        keys = dict(conn.exec_driver_sql("SELECT id, url_key FROM inputs").all())
    assert keys == {"u": url_key("https://x.test/cat.jpg"), "b": None}


def test_migration_0014_keeps_the_annotations_and_scores_of_existing_inputs(tmp_path: Path) -> None:
    """SQLite rebuilds the inputs table to drop NOT NULL; the cascade of that rebuild must not
    empty the tables that refer to inputs."""
    inserts = ["INSERT INTO inputs (app_id, id, digest, url, width, height, metadata, status_code, created_at, "
               "modified_at) VALUES ('a', 'i', 'd', NULL, 4, 3, '{}', 30000, '2026-01-01', '2026-01-01')",
               "INSERT INTO concepts (app_id, id, name, created_at, modified_at) VALUES "
               "('a', 'cat', 'cat', '2026-01-01', '2026-01-01')",
               "INSERT INTO input_concepts (app_id, input_id, concept_id, value) VALUES ('a', 'i', 'cat', 1.0)",
               "INSERT INTO input_concept_scores (app_id, input_id, concept_id, value) VALUES ('a', 'i', 'n1', 0.5)"]
    with _migrated_from(tmp_path, "0013", *inserts) as conn:
        inputs = conn.exec_driver_sql("SELECT id, digest, width, status_details FROM inputs").all()
        assert inputs == [("i", "d", 4, None)]
        assert conn.exec_driver_sql("SELECT input_id, concept_id FROM input_concepts").all() == [("i", "cat")]
        assert conn.exec_driver_sql("SELECT input_id, concept_id FROM input_concept_scores").all() == [("i", "n1")]
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []


@pytest.mark.postgres  # the backfill reads JSON in each dialect's SQL
def test_migration_0022_backfills_the_digests_embedding_collection_asks_by(tmp_path: Path, database_url: str) -> None:
    db = Database(database_url or f"sqlite:///{tmp_path / 'old.db'}")
    try:
        if database_url:  # a copy of the template, at the newest schema
            command.downgrade(alembic_config(db.engine), "0021")
        else:
            command.upgrade(alembic_config(db.engine), "0021")
        with db.engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO feedback_events (id, app_id, event_type, body, body_hash, key_id, created_at) VALUES "
                "('e1', 'a', 'annotation', '{\"normalized\": {\"digest\": \"d1\"}}', 'h1', 'k', '2026-01-01'), "
                "('e2', 'a', 'annotation', '{\"normalized\": {\"digest\": null}}', 'h2', 'k', '2026-01-01')")
            conn.exec_driver_sql("INSERT INTO searches (id, app_id, query, kind, key_id, created_at, query_digests) "
                                 "VALUES ('s1', 'a', '{}', 'visual', 'k', '2026-01-01', 'q1+q2'), "
                                 "('s2', 'a', '{}', 'concept', 'k', '2026-01-01', NULL)")
        command.upgrade(alembic_config(db.engine), "head")
        with db.engine.connect() as conn:
            events = dict(conn.exec_driver_sql("SELECT id, digest FROM feedback_events").all())
            images = conn.exec_driver_sql("SELECT search_id, digest FROM search_query_images ORDER BY digest").all()
        command.downgrade(alembic_config(db.engine), "0021")
    finally:
        db.dispose()
    assert events == {"e1": "d1", "e2": None}
    assert [tuple(r) for r in images] == [("s1", "q1"), ("s1", "q2")]
