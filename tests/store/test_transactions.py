"""Transactions on both backends: a rollback undoes savepoints too, and two writers at once,
interleaved deterministically (a second writer starts while the first holds uncommitted changes,
so it waits on them: PostgreSQL row locks, SQLite's write lock) both end right."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert, select

from visionloop.core import VisionLoop
from visionloop.services.concepts import ensure_concepts
from visionloop.services.inputs import NewInput
from visionloop.store.tables import App, Concept, Input

NOW = dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc)
WAIT = 0.5  # long enough for the second writer to reach the row the first one holds


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[BaseException]]:
    failures: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the test below
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, failures


def test_a_rollback_undoes_what_a_savepoint_released(core: VisionLoop) -> None:
    class Failure(Exception):
        pass

    try:
        with core.db.transaction() as s:
            with s.begin_nested():  # the first statement of the transaction (SQLite once committed it here)
                s.add(App(id="gone", name="gone"))
            s.add(App(id="gone-too", name="gone"))
            s.flush()
            raise Failure
    except Failure:
        pass
    assert {a.id for a in core.apps.list_apps()} & {"gone", "gone-too"} == set()


def test_writers_racing_to_create_one_concept_both_succeed(core: VisionLoop) -> None:
    core.apps.create_app("race")

    def second() -> None:
        with core.db.transaction() as s:
            ensure_concepts(s, "race", ["new", "other"])

    with core.db.transaction() as s:
        ensure_concepts(s, "race", ["new"])
        thread, failures = _in_thread(second)
        thread.join(WAIT)  # it now waits for this transaction (PostgreSQL: the uncommitted 'new' row)
        assert thread.is_alive()
    thread.join(30)
    assert not thread.is_alive() and not failures, failures
    with core.db.session() as s:
        assert sorted(s.scalars(select(Concept.id).where(Concept.app_id == "race"))) == ["new", "other"]


def test_concurrent_metadata_merges_lose_nothing(core: VisionLoop) -> None:
    core.apps.create_app("race")
    with core.db.transaction() as s:
        s.add(Input(app_id="race", id="one", digest="0" * 64, width=1, height=1, meta={}, status_code=30000))

    def second() -> None:
        core.inputs.patch("race", "merge", [NewInput(id="one", image=None, metadata={"b": 2})])

    with core.db.transaction() as s:  # a first merge, in progress
        row = s.get(Input, ("race", "one"), with_for_update=True)
        assert row is not None
        row.meta = {**row.meta, "a": 1}
        s.flush()
        thread, failures = _in_thread(second)
        thread.join(WAIT)
        assert thread.is_alive()  # the second merge waits for the first
    thread.join(30)
    assert not thread.is_alive() and not failures, failures
    assert core.inputs.get("race", "one").row.meta == {"a": 1, "b": 2}


def test_a_hot_write_after_a_failed_one_starts_clean(core: VisionLoop) -> None:
    """SQLite's writing() keeps its connection between turns: a failed turn must leave nothing
    behind for the next (its changes undone, the connection replaced)."""
    class Failure(Exception):
        pass

    core.apps.create_app("hot", "Hot")
    insert = Concept.__table__.insert()
    row = {"app_id": "hot", "name": "n", "name_key": "n", "created_at": NOW, "modified_at": NOW}
    try:
        with core.db.writing() as failed:
            failed.execute(insert, {**row, "id": "undone"})
            raise Failure
    except Failure:
        pass
    with core.db.writing() as first:
        first.execute(insert, {**row, "id": "kept"})
    with core.db.writing() as second:
        second.execute(insert, {**row, "id": "again"})
    if core.db.engine.dialect.name == "sqlite":  # PostgreSQL's writers each take one from the pool
        assert first is not failed and second is first  # replaced after the failure, then kept
    with core.db.session() as s:
        assert sorted(s.scalars(select(Concept.id).where(Concept.app_id == "hot"))) == ["again", "kept"]


def test_a_write_that_need_not_be_durable_commits_and_leaves_the_next_one_durable(core: VisionLoop) -> None:
    """``writing(durable=False)`` (the rate limit's leases) commits like any write; on SQLite it lowers
    ``synchronous`` for its own transaction only, on the connection the next writer is handed."""
    with core.db.writing(durable=False) as conn:
        conn.execute(insert(App).values(id="lease", name="lease", created_at=NOW))
    with core.db.writing() as conn:  # (PostgreSQL's SET LOCAL ends with its transaction by definition)
        if conn.dialect.name == "sqlite":
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    assert "lease" in {a.id for a in core.apps.list_apps()}
