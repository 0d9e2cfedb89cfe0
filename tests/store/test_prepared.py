"""Prepared statements give what SQLAlchemy's own execution gives, on both backends: the same
rows, the same stored values (datetimes in SQLite's format, JSON), a LIMIT the statement carries,
and they join the connection's transaction."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from visionloop.core import VisionLoop
from visionloop.store.prepared import Prepared, PreparedIn, slots
from visionloop.store.tables import App, Concept

WHEN = dt.datetime(2026, 1, 31, 12, 30, 15, 123456, tzinfo=dt.timezone.utc)
COLUMNS = ("app_id", "id", "name", "language", "created_at", "modified_at")
_INSERT = Prepared(insert(Concept), COLUMNS)
_BY_APP = Prepared(select(Concept.id, Concept.name, Concept.created_at)
                   .where(Concept.app_id == bindparam("app_id"), Concept.created_at >= bindparam("since"))
                   .order_by(Concept.id).limit(2))
_APP = Prepared(select(App.id, App.name).where(App.id == bindparam("id")))


def _utc(value: dt.datetime) -> dt.datetime:
    """SQLite gives naive UTC back; PostgreSQL an aware time in the session's zone."""
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def _concept(cid: str, when: dt.datetime = WHEN) -> dict[str, object]:
    return {"app_id": "prep", "id": cid, "name": cid.upper(), "language": None, "created_at": when,
            "modified_at": when}


@pytest.fixture
def app_row(core: VisionLoop) -> str:
    core.apps.create_app("prep", "Prepared")
    return "prep"


def test_rows_match_sqlalchemys_execution(core: VisionLoop, app_row: str) -> None:
    with core.db.writing() as conn:
        _INSERT.execute_many(conn, [_concept(cid, when) for cid, when in (
            ("b", WHEN), ("a", WHEN), ("c", WHEN + dt.timedelta(days=1)), ("old", WHEN - dt.timedelta(days=1)))])
    with core.db.reading() as conn:
        prepared = _BY_APP.all(conn, {"app_id": app_row, "since": WHEN})
        core_rows = conn.execute(_BY_APP.stmt, {"app_id": app_row, "since": WHEN}).all()
    assert [(r.id, r.name, r.created_at) for r in prepared] == [tuple(r) for r in core_rows]
    assert [r.id for r in prepared] == ["a", "b"]  # the statement's own LIMIT 2, the "old" one excluded
    assert _utc(prepared[0].created_at) == WHEN


def test_inserted_values_read_back_through_the_orm(core: VisionLoop, app_row: str) -> None:
    with core.db.writing() as conn:
        _INSERT.execute_many(conn, [_concept("x")])
    with core.db.session() as s:
        concept = s.get(Concept, ("prep", "x"))
        assert concept is not None and concept.name == "X"
        assert _utc(concept.created_at) == WHEN


def test_it_runs_inside_the_connections_transaction(core: VisionLoop, app_row: str) -> None:
    class Undo(Exception):
        pass

    with pytest.raises(Undo), core.db.writing() as conn:
        _INSERT.execute_many(conn, [_concept("gone")])
        raise Undo
    with core.db.reading() as conn:
        assert _BY_APP.all(conn, {"app_id": app_row, "since": WHEN - dt.timedelta(days=9)}) == []
        assert _APP.first(conn, {"id": "nobody"}) is None
        assert _APP.first(conn, {"id": app_row}).name == "Prepared"


def test_a_list_longer_than_the_slots_takes_several_runs(core: VisionLoop, app_row: str) -> None:
    by_ids = PreparedIn(lambda n: select(Concept.id, Concept.name)
                        .where(Concept.app_id == bindparam("app_id"), Concept.id.in_(slots("id", n)),
                               Concept.name.in_(slots("name", n))).order_by(Concept.id), most=3)
    with core.db.writing() as conn:
        _INSERT.execute_many(conn, [_concept(cid) for cid in "abcde"])
    with core.db.reading() as conn:
        found = by_ids.all(conn, {"app_id": app_row}, id=["e", "a", "zz", "c", "b"], name=["E", "A", "ZZ", "C", "X"])
    assert [(r.id, r.name) for r in found] == [("a", "A"), ("e", "E"), ("c", "C")]  # runs of 3, then 2


def test_an_insert_must_name_its_columns() -> None:
    with pytest.raises(ValueError, match="column keys"):
        Prepared(insert(Concept))


def test_the_drivers_errors_come_as_sqlalchemys(core: VisionLoop, app_row: str) -> None:
    """As any other statement's: the HTTP layer maps SQLAlchemy's DataError (a NUL PostgreSQL cannot
    hold) to a 400, and callers catch its IntegrityError; the driver's own would be a 500."""
    with core.db.writing() as conn:
        _INSERT.execute_many(conn, [_concept("twice")])
    with pytest.raises(IntegrityError), core.db.writing() as conn:
        _INSERT.execute_many(conn, [_concept("twice")])
