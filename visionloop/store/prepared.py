"""Hot-path statements compiled once per dialect and run on the driver's cursor.

Why: executing a Core statement costs SQLAlchemy 40-60 µs of execution context, event dispatch
and result wrapping, while SQLite runs a primary-key lookup or a one-row insert in a few; the
feedback endpoint runs four such statements per request. A :class:`Prepared` statement keeps
what SQLAlchemy contributes — the SQL of each dialect and the column types' conversions (JSON,
SQLite's datetimes) — computed once, and skips the per-execution machinery. It runs on the DBAPI
connection of a :class:`sqlalchemy.Connection`, inside whatever transaction that connection has.

Only for statements with fixed parameters: an expanding ``IN`` is rendered per execution. A
list is matched by :class:`PreparedIn`, one statement per list length.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from sqlalchemy import BindParameter, Connection, Dialect, Insert, SelectBase, bindparam
from sqlalchemy.exc import DBAPIError

Processor = Callable[[Any], Any]


def slots(name: str, count: int) -> list[BindParameter[Any]]:
    """Parameters ``name0`` ... ``name{count-1}``: an ``IN`` of ``count`` values for :class:`PreparedIn`."""
    return [bindparam(f"{name}{i}") for i in range(count)]


@dataclasses.dataclass(frozen=True)
class _Compiled:
    sql: str
    order: tuple[str, ...] | None                   # positional parameter names (qmark), else None
    binds: dict[str, Processor]                     # parameter -> conversion to the driver's value
    defaults: dict[str, Any]                        # values the statement carries (a LIMIT's)
    row: Callable[..., tuple[Any, ...]] | None      # a named tuple of the selected columns
    types: tuple[Any, ...]                          # the selected columns' types, in this dialect


def _row_type(keys: list[str]) -> Callable[..., tuple[Any, ...]]:
    """A named tuple of the selected columns (a key that is no identifier is renamed)."""
    return namedtuple("Row", keys, rename=True)


class Prepared:
    """``Prepared(stmt).all(conn, params)``: the statement's rows as named tuples, as
    ``conn.execute(stmt, params).all()`` would give them (attribute access by column key)."""

    def __init__(self, stmt: SelectBase | Insert, column_keys: Sequence[str] | None = None) -> None:
        """``column_keys``: for an INSERT, the columns every execution supplies (all of them)."""
        if isinstance(stmt, Insert) and column_keys is None:
            raise ValueError("an INSERT needs the column keys it is executed with")
        self.stmt = stmt
        self.column_keys = list(column_keys) if column_keys is not None else None
        self._by_dialect: dict[str, _Compiled] = {}
        # per dialect, per selected column: conversion of the driver's value (known at the first
        # execution: some depend on the type code the driver reports)
        self._results: dict[str, tuple[Processor | None, ...]] = {}
        self._lock = threading.Lock()

    def _compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            with self._lock:
                compiled = self._by_dialect.get(dialect.name) or self._compile(dialect)
                self._by_dialect[dialect.name] = compiled
        return compiled

    def _compile(self, dialect: Dialect) -> _Compiled:
        comp = self.stmt.compile(dialect=dialect, column_keys=self.column_keys)
        binds: dict[str, Processor] = {name: p for name, bind in comp.binds.items()
                                       if (p := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None}
        defaults = {name: bind.value for name, bind in comp.binds.items() if not bind.required}
        row: Callable[..., tuple[Any, ...]] | None = None
        types: tuple[Any, ...] = ()
        if not isinstance(self.stmt, Insert):
            columns = list(self.stmt.selected_columns)
            row = _row_type([str(c.key) for c in columns])  # namedtuple takes str() of each key
            types = tuple(c.type.dialect_impl(dialect) for c in columns)
        order = tuple(comp.positiontup) if comp.positiontup is not None else None
        return _Compiled(str(comp), order, binds, defaults, row, types)

    @staticmethod
    def _bound(c: _Compiled, params: Mapping[str, Any]) -> Any:
        """The driver's parameters: converted, positional if the dialect's are."""
        given = {**c.defaults, **params} if c.defaults else params
        values = {k: (p(v) if (p := c.binds.get(k)) is not None else v) for k, v in given.items()}
        return tuple(values[name] for name in c.order) if c.order is not None else values

    def _run(self, conn: Connection, params: Mapping[str, Any]) -> tuple[_Compiled, Any]:
        c = self._compiled(conn.dialect)
        cursor = conn.connection.cursor()
        with _as_sqlalchemy_errors(conn, c):
            cursor.execute(c.sql, self._bound(c, params))
        return c, cursor

    def all(self, conn: Connection, params: Mapping[str, Any]) -> list[Any]:
        c, cursor = self._run(conn, params)
        try:
            raw = cursor.fetchall()
            results = self._results.get(conn.dialect.name)
            if results is None:
                results = self._results[conn.dialect.name] = tuple(
                    t.result_processor(conn.dialect, d[1]) for t, d in zip(c.types, cursor.description))
        finally:
            cursor.close()
        assert c.row is not None, "all() is for statements that return rows"
        if any(results):
            return [c.row(*(p(v) if p is not None else v for p, v in zip(results, r))) for r in raw]
        return [c.row(*r) for r in raw]

    def first(self, conn: Connection, params: Mapping[str, Any]) -> Any | None:
        rows = self.all(conn, params)
        return rows[0] if rows else None

    def execute_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement whose rows are not wanted (an INSERT) once per parameter set."""
        c = self._compiled(conn.dialect)
        cursor = conn.connection.cursor()
        try:
            with _as_sqlalchemy_errors(conn, c):
                cursor.executemany(c.sql, [self._bound(c, params) for params in rows])
        finally:
            cursor.close()


@contextlib.contextmanager
def _as_sqlalchemy_errors(conn: Connection, c: _Compiled) -> Iterator[None]:
    """The driver's errors as SQLAlchemy raises them for any other statement (``DataError`` for text
    PostgreSQL cannot hold, ``IntegrityError``...), so callers and the HTTP error mapper see one kind."""
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as exc:
        raise DBAPIError.instance(c.sql, None, exc, dbapi_error) from exc


class PreparedIn:
    """A statement matching lists of values: ``build(n)`` matches lists of ``n`` (each ``IN`` made of
    :func:`slots`), prepared once per ``n`` up to ``most``; a longer list takes several runs.

    One statement per length rather than one of ``most`` slots padded with NULL: SQLite ran the
    padded one in 27 µs for 2 values of 8, the exact one in 15.
    """

    def __init__(self, build: Callable[[int], SelectBase | Insert], most: int = 8) -> None:
        self._build = build
        self.most = most
        self._by_length: dict[int, Prepared] = {}

    def of_length(self, n: int) -> Prepared:
        return self._by_length.get(n) or self._by_length.setdefault(n, Prepared(self._build(n)))

    def all(self, conn: Connection, params: Mapping[str, Any], **lists: Sequence[Any]) -> list[Any]:
        """The rows for ``lists`` (named as their slots, all of one length) and the other ``params``."""
        length = len(next(iter(lists.values())))
        rows: list[Any] = []
        for lo in range(0, length, self.most):
            n = min(self.most, length - lo)
            rows += self.of_length(n).all(conn, {**params, **{f"{name}{i}": values[lo + i]
                                                              for name, values in lists.items() for i in range(n)}})
        return rows
