"""Usage metering: monthly counts of billable operations per app and key, with optional limits.

Predict, search and input operations are counted; feedback never is (it makes models better
for everyone and must never be discouraged by a bill or blocked by a limit).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from sqlalchemy import Connection, CursorResult, bindparam, func, select, update
from sqlalchemy.orm import Session

from visionloop import errors
from visionloop.services.apps import Caller
from visionloop.store.db import Database, insert_missing
from visionloop.store.tables import Usage

BILLABLE = frozenset({"predict", "search", "inputs"})
# Built once: every predict, search and input call runs it.
_BUMP = (update(Usage).where(Usage.app_id == bindparam("w_app"), Usage.key_id == bindparam("w_key"),
                             Usage.month == bindparam("w_month"), Usage.op == bindparam("w_op"))
         .values(count=Usage.count + bindparam("n"))
         .execution_options(synchronize_session=False))  # no Usage objects live in these sessions


_USED = (select(func.coalesce(func.sum(Usage.count), 0))
         .where(Usage.app_id == bindparam("app_id"), Usage.key_id == bindparam("key_id"),
                Usage.month == bindparam("month")))


def this_month() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m")


def count_usage(s: Session | Connection, caller: Caller, op: str, count: int) -> None:
    """Count operations inside the transaction that does them, so the work and its count commit together."""
    if op not in BILLABLE:
        raise ValueError(f"{op!r} is not a billable operation")
    if count <= 0:
        return
    month = this_month()
    bump = {"w_app": caller.app_id, "w_key": caller.key_id, "w_month": month, "w_op": op, "n": count}
    bumped = cast(CursorResult[Any], s.execute(_BUMP, bump))  # an UPDATE's result is a CursorResult
    if not bumped.rowcount:  # the month's first: create the row (unless a racer just did)
        insert_missing(s, Usage, [{"app_id": caller.app_id, "key_id": caller.key_id, "month": month, "op": op,
                                   "count": 0}], key=("app_id", "key_id", "month", "op"))
        s.execute(_BUMP, bump)
    if caller.monthly_limit is not None:  # requests that passed check() together may not overshoot together
        used = s.execute(_USED, {"app_id": caller.app_id, "key_id": caller.key_id, "month": month}).scalar_one()
        if used > caller.monthly_limit:
            raise _exceeded(caller.monthly_limit, used - count, count)


def _exceeded(limit: int, used: int, wanted: int) -> errors.ApiError:
    left = max(0, limit - used)
    return errors.LimitExceeded(f"this API key's monthly limit of {limit} operations would be passed: {used} used "
                                f"this month, {left} left, and this request needs {wanted}")


class UsageService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def check(self, caller: Caller, operations: int = 1) -> None:
        """Refuse before the work when ``operations`` more would pass the key's monthly limit
        (:func:`count_usage` checks again where the count is taken, for requests racing past this)."""
        if caller.monthly_limit is None:
            return
        used = self.used(caller.app_id, caller.key_id)
        if used + max(1, operations) > caller.monthly_limit:
            raise _exceeded(caller.monthly_limit, used, max(1, operations))

    def used(self, app_id: str, key_id: str | None = None, month: str | None = None) -> int:
        with self.db.session() as s:
            q = select(func.coalesce(func.sum(Usage.count), 0)).where(Usage.app_id == app_id,
                                                                     Usage.month == (month or this_month()))
            if key_id:
                q = q.where(Usage.key_id == key_id)
            return int(s.scalar(q) or 0)

    def by_op(self, app_id: str, month: str | None = None) -> dict[str, int]:
        with self.db.session() as s:
            q = (select(Usage.op, func.sum(Usage.count)).where(Usage.app_id == app_id,
                                                               Usage.month == (month or this_month()))
                 .group_by(Usage.op))
            return {op: int(n) for op, n in s.execute(q)}
