"""Engine and sessions: SQLite in WAL mode by default, any SQLAlchemy URL (PostgreSQL) by setting."""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, insert, make_url, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

WRITER = "visionloop_writer"  # execution option of the connections of Database.transaction()
READER = "visionloop_reader"  # ... and of Database.reading()


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for another database or an in-memory one); a query string
    (``?timeout=5``) is not part of it."""
    if not url.startswith("sqlite"):
        return None
    path = make_url(url).database
    return Path(path) if path and path != ":memory:" else None


def make_engine(url: str) -> Engine:
    """An engine tuned for the backend: SQLite gets WAL, FULL sync and a busy timeout.

    SQLite transactions are begun by SQLAlchemy, not by the sqlite3 module (which defers BEGIN
    to the first write: reads before it ran outside the transaction, and a SAVEPOINT opened
    before it was a transaction of its own that its RELEASE committed, whatever the outer
    transaction did next). Write transactions begin IMMEDIATE, taking the write lock first, so
    two read-modify-writes never interleave (on PostgreSQL that is SELECT ... FOR UPDATE's job).
    """
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=8,
                               max_overflow=16)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None  # no implicit BEGIN from the driver; see _sqlite_begin
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn) -> None:  # type: ignore[no-untyped-def]
            options = conn.get_execution_options()
            if not options.get(READER):  # Database.reading(): each statement on its own
                # straight to the driver: through exec_driver_sql this cost many times the BEGIN itself
                conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if options.get(WRITER) else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """Owns the engine and hands out transactional sessions."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time. Its busy handler makes a waiting writer sleep and retry
        # with growing naps, so threads of one process contending for the write
        # lock spend most of their time asleep; queueing them on a lock of ours first hands the
        # database over the moment it is free. (Other processes still meet the busy handler.)
        self._one_writer = self.engine.dialect.name == "sqlite"
        self._writers: AbstractContextManager[Any] = threading.RLock() if self._one_writer else nullcontext()
        # Engines sharing the pool whose connections carry the option already: Connection.execution_options()
        # copies the connection, which cost a hot path's reading() a good part of its time.
        self._reader_engine = self.engine.execution_options(**{READER: True})
        self._writer_engine = self.engine.execution_options(**{WRITER: True})
        # SQLite: writers take turns (self._writers), so writing() keeps its connection between turns:
        # an empty turn is several times faster with the kept one than with a connection checked out of
        # the pool and back (docs/benchmarks.md).
        self._held: Connection | None = None

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session committed on success and rolled back on any exception."""
        with self._writers, self._sessions() as session, session.begin():
            session.connection(execution_options={WRITER: True})
            yield session

    @contextmanager
    def writing(self, *, durable: bool = True) -> Iterator[Connection]:
        """Like :meth:`transaction`, on a bare connection: for hot write paths with no ORM objects.

        On SQLite the connection is the one kept between turns (a nested call, which the one
        writer rule would make wait anyway, gets one of its own); after any failure it is dropped.
        ``durable=False`` is for a write whose loss in a crash does no harm (a rate limit's lease):
        its commit does not wait for the disk (SQLite syncs it with the next durable commit;
        PostgreSQL's ``synchronous_commit`` is off for it)."""
        if self._one_writer:
            with self._writers:
                conn, self._held = self._held or self._writer_engine.connect(), None
                try:
                    with _synced(conn, durable), conn.begin():
                        yield conn
                except BaseException:
                    conn.close()
                    raise
                if self._held is None:
                    self._held = conn
                else:
                    conn.close()
            return
        with self._writer_engine.connect() as conn, conn.begin():
            if not durable:
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A bare connection for a few reads on a hot path that need no common snapshot: on SQLite
        each statement runs on its own, without a BEGIN to send and a transaction to end."""
        with self._reader_engine.connect() as conn:
            yield conn

    def session(self) -> Session:
        return self._sessions()

    def dispose(self) -> None:
        with self._writers:
            if self._held is not None:
                held, self._held = self._held, None
                held.close()
        self.engine.dispose()


@contextmanager
def _synced(conn: Connection, durable: bool) -> Iterator[None]:
    """SQLite: unless ``durable``, commits in the block do not sync the WAL (``synchronous=NORMAL``,
    set outside any transaction as SQLite requires); FULL again after it."""
    if durable:
        yield
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA synchronous=NORMAL")
    try:
        yield
    finally:
        raw.execute("PRAGMA synchronous=FULL")


def lock_key(name: str) -> int:
    """A PostgreSQL advisory lock key (signed 64-bit) for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def dialect_of(s: Session | Connection) -> str:
    return (s.dialect if isinstance(s, Connection) else s.get_bind().dialect).name


def serialize(s: Session | Connection, name: str) -> None:
    """Until this transaction ends, be the only one holding ``name`` (several processes on one
    PostgreSQL). A no-op on SQLite, where one writer at a time is the rule anyway."""
    if dialect_of(s) == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(name)})


@contextmanager
def exclusive(engine: Engine, name: str, *, wait: bool = True) -> Iterator[bool]:
    """Run the block as the only holder of ``name`` among every process on one PostgreSQL (a
    session advisory lock on a connection of its own, so the block may commit as it likes).
    With ``wait=False`` it yields False at once if another process holds ``name``. A process
    that dies releases its locks. A no-op yielding True on SQLite (one server process)."""
    if engine.dialect.name != "postgresql":
        yield True
        return
    key = lock_key(name)
    with engine.connect() as conn:
        take = "SELECT pg_advisory_lock(:key)" if wait else "SELECT pg_try_advisory_lock(:key)"
        held = conn.execute(text(take), {"key": key}).scalar() is not False
        conn.commit()
        try:
            yield held
        finally:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                conn.commit()


def insert_missing(s: Session | Connection, entity: Any, rows: Sequence[dict[str, Any]], key: Sequence[str]) -> None:
    """INSERT rows whose ``key`` is not taken, skipping the others, also those a concurrent
    transaction inserts meanwhile (where check-then-insert would fail with a unique violation)."""
    if not rows:
        return
    dialect = dialect_of(s)
    if dialect in ("postgresql", "sqlite"):
        s.execute(_insert_or_skip(entity, tuple(key), dialect), list(rows))
        return
    for row in rows:  # any other database: one savepoint per row
        try:
            with s.begin_nested():
                s.execute(insert(entity).values(row))
        except IntegrityError:
            pass


@functools.cache
def _insert_or_skip(entity: Any, key: tuple[str, ...], dialect: str) -> Any:
    """``INSERT ... ON CONFLICT (key) DO NOTHING``, built once per table (hot paths run it per request)."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return dialect_insert(entity).on_conflict_do_nothing(index_elements=list(key))
