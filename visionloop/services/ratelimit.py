"""Token buckets per API key and per app: one limit for every process on a database.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second; each request
takes one. A request passes only if both its key's bucket and its app's bucket (``app_factor``
times larger: several keys of one app together) have a token; otherwise it is refused with
:class:`~visionloop.errors.Throttled` (11005, HTTP 429) and takes nothing. A new bucket starts full.

The buckets are rows of the database (``rate_buckets``), so N processes behind a load balancer
share one limit instead of allowing N times it. A process does not write a row per request: it
*leases* ``lease_seconds`` worth of the rate at a time (at least one token) with one atomic UPDATE
and spends the lease from memory; a bucket found empty is not asked again before its next token
is due. The processes together never let through more than the buckets give; what they may fall
short by is the unspent leases, at most one per process and bucket.

When the database cannot be asked, a process decides alone from buckets in its own memory (a full
burst each, as every process did before the limit was shared) for ``FALLBACK_SECONDS``, then asks
the database again: throttling never turns a request into an error of its own.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

from sqlalchemy import Float, bindparam, case, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import ColumnElement

from visionloop import errors
from visionloop.store.db import Database, insert_missing
from visionloop.store.tables import RateBucket

log = logging.getLogger("visionloop.ratelimit")

LEASE_SECONDS = 0.1     # a lease is this much of the rate: few writes, little left unspent in a process
FALLBACK_SECONDS = 5.0  # after the database failed a lease, decide in memory this long before asking again


@dataclasses.dataclass(frozen=True)
class Limit:
    rate: float   # tokens per second
    burst: float  # tokens at most

    @property
    def fill_seconds(self) -> float:
        """How long an empty bucket takes to fill."""
        return self.burst / self.rate


class Grant(NamedTuple):
    granted: float  # tokens the lease took from the bucket
    left: float     # tokens left in the bucket after it


class Buckets(Protocol):
    def lease(self, kind: str, owner: str, limit: Limit, want: float, held: float, now: float) -> Grant:
        """Refill the bucket to ``now`` and take up to ``want`` tokens from it; nothing unless the
        caller's ``held`` tokens and the bucket's together make a whole token."""


def _least(a: ColumnElement[float], b: ColumnElement[float]) -> ColumnElement[float]:
    return case((a < b, a), else_=b)  # LEAST() is not SQLite's and min() is not PostgreSQL's


_NOW = bindparam("now", type_=Float)
_HELD = bindparam("held", type_=Float)
# A refill time further ahead than a whole refill was written by a clock since stepped back: it
# counts from now instead, or the bucket would stay empty, in every process, for the size of the step.
_REFILLED = case((RateBucket.refilled > _NOW + bindparam("fill", type_=Float), _NOW), else_=RateBucket.refilled)
_AVAILABLE = _least(RateBucket.tokens + case((_NOW > _REFILLED, _NOW - _REFILLED), else_=0.0)
                    * bindparam("rate", type_=Float), bindparam("burst", type_=Float))
_GRANT = case((_AVAILABLE + _HELD >= 1.0, _least(bindparam("want", type_=Float), _AVAILABLE)), else_=0.0)
# One atomic statement, built once (SET sees the row as it was: both backends evaluate it on the
# newest committed row under its lock). A clock that went back a little refills nothing and moves nothing.
_LEASE = (update(RateBucket).where(RateBucket.kind == bindparam("w_kind"), RateBucket.owner_id == bindparam("w_owner"))
          .values(tokens=_AVAILABLE - _GRANT, granted=_GRANT,
                  refilled=case((_NOW > _REFILLED, _NOW), else_=_REFILLED))
          .returning(RateBucket.granted, RateBucket.tokens)
          .execution_options(synchronize_session=False))


class DatabaseBuckets:
    """Buckets every process on the database shares."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def lease(self, kind: str, owner: str, limit: Limit, want: float, held: float, now: float) -> Grant:
        params = {"w_kind": kind, "w_owner": owner, "rate": limit.rate, "burst": limit.burst, "want": want,
                  "held": held, "now": now, "fill": limit.fill_seconds}
        with self.db.writing(durable=False) as conn:  # a lease lost in a crash lets a few requests more through
            row = conn.execute(_LEASE, params).first()
            if row is None:  # the bucket's first lease: it starts full (unless a racer just made it)
                insert_missing(conn, RateBucket, [{"kind": kind, "owner_id": owner, "tokens": limit.burst,
                                                   "refilled": now, "granted": 0.0}], key=("kind", "owner_id"))
                row = conn.execute(_LEASE, params).one()
        return Grant(float(row.granted), float(row.tokens))


class MemoryBuckets:
    """Buckets in this process's memory: the fallback when the database cannot be asked."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], tuple[float, float]] = {}  # (kind, owner) -> (tokens, refilled)
        self._lock = threading.Lock()

    def lease(self, kind: str, owner: str, limit: Limit, want: float, held: float, now: float) -> Grant:
        with self._lock:
            tokens, refilled = self._rows.get((kind, owner), (limit.burst, now))
            if refilled > now + limit.fill_seconds:
                refilled = now
            available = min(limit.burst, tokens + max(0.0, now - refilled) * limit.rate)
            granted = min(want, available) if available + held >= 1.0 else 0.0
            self._rows[(kind, owner)] = (available - granted, max(refilled, now))
            return Grant(granted, available - granted)


@dataclasses.dataclass
class _Lease:
    """This process's share of one bucket."""

    held: float = 0.0         # leased, not spent yet
    asked: float = 0.0        # when the bucket was last found empty ...
    empty_until: float = 0.0  # ... and when its next token is due


class RateLimiter:
    def __init__(self, rate: float, *, db: Database | None = None, name: str = "requests",
                 burst_seconds: float = 10.0, app_factor: float = 5.0, lease_seconds: float = LEASE_SECONDS,
                 clock: Callable[[], float] = time.time, what: str = "requests") -> None:
        """``rate`` requests per second per key (0 disables); bursts of ``burst_seconds`` worth.
        Buckets are shared through ``db`` (rows named after ``name``), else kept in memory."""
        if rate < 0:
            raise ValueError("rate must be >= 0")
        self.rate = float(rate)
        self.key_limit = Limit(self.rate, max(1.0, rate * burst_seconds))
        self.app_limit = Limit(self.rate * app_factor, self.key_limit.burst * app_factor)
        self.lease_seconds = lease_seconds
        self.clock = clock  # wall-clock seconds: processes compare refill times through the database
        self.what = what
        self._kinds = (f"{name}:key", f"{name}:app")
        self._shared: Buckets | None = DatabaseBuckets(db) if db is not None else None
        self._memory = MemoryBuckets()
        self._shared_from = 0.0  # after a failed lease, the database is asked again from this time
        self._leases: dict[tuple[str, str], _Lease] = {}
        self._gates: dict[str, threading.Lock] = {}  # one lease at a time per app in this process
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, app_id: str, key_id: str) -> None:
        """Take one token from the key's and the app's bucket, or refuse (taking none)."""
        if not self.enabled:
            return
        wanted = ((self._kinds[0], key_id, self.key_limit, "this API key"),
                  (self._kinds[1], app_id, self.app_limit, "this app"))
        with self._lock:
            leases = [self._leases.setdefault((kind, owner), _Lease()) for kind, owner, _, _ in wanted]
            if self._spend(leases):
                return
            gate = self._gates.setdefault(app_id, threading.Lock())
        with gate:
            while True:  # a lease taken here may be spent by requests on the path above before ours
                now = self.clock()
                for lease, (kind, owner, limit, who) in zip(leases, wanted):
                    if lease.held < 1.0:
                        self._refill(lease, kind, owner, limit, who, now)
                with self._lock:
                    if self._spend(leases):
                        return

    @staticmethod
    def _spend(leases: list[_Lease]) -> bool:
        if all(lease.held >= 1.0 for lease in leases):
            for lease in leases:
                lease.held -= 1.0
            return True
        return False

    def _refill(self, lease: _Lease, kind: str, owner: str, limit: Limit, who: str, now: float) -> None:
        """Lease more of the bucket, or refuse when it has no token for this request."""
        if lease.asked <= now < lease.empty_until:
            raise self._refusal(who, limit, lease.empty_until - now)
        grant = self._lease(kind, owner, limit, lease.held, now)
        with self._lock:
            lease.held += grant.granted
            if lease.held >= 1.0:
                return
            wait = (1.0 - lease.held - grant.left) / limit.rate
            lease.asked, lease.empty_until = now, now + wait
        raise self._refusal(who, limit, wait)

    def _lease(self, kind: str, owner: str, limit: Limit, held: float, now: float) -> Grant:
        want = max(1.0, limit.rate * self.lease_seconds)
        # after the fallback's few seconds, or at once if the clock went back to before the failure
        if self._shared is not None and not now < self._shared_from <= now + FALLBACK_SECONDS:
            try:
                return self._shared.lease(kind, owner, limit, want, held, now)
            except SQLAlchemyError as exc:
                self._shared_from = now + FALLBACK_SECONDS
                log.warning("the shared rate limit could not lease from the database (%s); this process limits "
                            "alone for %g s", type(exc).__name__, FALLBACK_SECONDS)
        return self._memory.lease(kind, owner, limit, want, held, now)

    def _refusal(self, who: str, limit: Limit, wait: float) -> errors.Throttled:
        return errors.Throttled(f"too many {self.what} from {who} (at most {limit.rate:g} per second, bursts of "
                                f"{limit.burst:g}); retry in {wait:.2f} s")
