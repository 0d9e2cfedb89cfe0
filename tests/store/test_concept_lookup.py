"""Feedback's lookup of an app's concepts by id or by name (case-insensitively) finds the right
rows on both backends, and on SQLite reads them through indexes rather than every concept of the app."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import insert

from visionloop.core import VisionLoop
from visionloop.services.feedback.concepts import _APP_CONCEPTS, _app_concepts
from visionloop.store.tables import Concept

WHEN = dt.datetime(2026, 1, 31, tzinfo=dt.timezone.utc)


@pytest.fixture
def many_concepts(core: VisionLoop) -> str:
    """An app with 500 concepts, one other app with a concept of the same id and name."""
    for app in ("lookup", "other"):
        core.apps.create_app(app, app)
    rows = [{"app_id": "lookup", "id": f"c{i}", "name": f"Name {i}", "created_at": WHEN, "modified_at": WHEN}
            for i in range(500)]
    rows.append({"app_id": "other", "id": "c1", "name": "Name 1", "created_at": WHEN, "modified_at": WHEN})
    with core.db.writing() as conn:
        conn.execute(insert(Concept), rows)
    return "lookup"


def test_by_id_and_by_name_case_insensitively_within_the_app(core: VisionLoop, many_concepts: str) -> None:
    with core.db.reading() as conn:
        found = _app_concepts(conn, many_concepts, ["c7", "NAME 42", "name 7", "nothing"])
    assert sorted(r.id for r in found) == ["c42", "c7"]  # c7 named twice, listed once


def test_more_references_than_slots(core: VisionLoop, many_concepts: str) -> None:
    refs = [f"c{i}" for i in range(_APP_CONCEPTS.most * 2 + 3)]
    with core.db.reading() as conn:
        assert sorted(r.id for r in _app_concepts(conn, many_concepts, refs)) == sorted(refs)


@pytest.mark.parametrize("references", [1, 2, _APP_CONCEPTS.most])
def test_sqlite_reads_through_indexes_not_every_concept(core: VisionLoop, many_concepts: str, references: int) -> None:
    if core.db.engine.dialect.name != "sqlite":
        pytest.skip("the plan is SQLite's; PostgreSQL's planner picks by its statistics")
    compiled = _APP_CONCEPTS.of_length(references)._compiled(core.db.engine.dialect)
    params = tuple("x" for _ in compiled.order or ())
    with core.db.engine.connect() as conn:
        plan = " | ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.sql, params))
    assert "ix_concepts_app_name_key" in plan and "id=?" in plan, plan
    assert "SCAN" not in plan, plan
