"""Token buckets per key and per app, on a fake clock: in memory, and in the database where several
processes (here: several limiters on one database) share them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from visionloop import errors
from visionloop.services import ratelimit
from visionloop.services.ratelimit import Grant, Limit, RateLimiter
from visionloop.store.db import Database
from visionloop.store.migrate import upgrade
from visionloop.store.tables import RateBucket

pytestmark = pytest.mark.postgres  # the database's buckets on both backends

Make = Callable[..., RateLimiter]


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path, database_url: str) -> Iterator[Database]:
    """A migrated database: SQLite in the SQLite pass, a fresh PostgreSQL one in the other."""
    database = Database(database_url or f"sqlite:///{tmp_path / 'limits.db'}")
    upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture(params=["memory", "database"])
def make(request: pytest.FixtureRequest) -> Make:
    """Limiters whose buckets are in memory, or in the database."""
    db = request.getfixturevalue("db") if request.param == "database" else None
    return lambda rate, **kw: RateLimiter(rate, db=db, **kw)


def test_burst_then_steady_rate(make: Make) -> None:
    clock = Clock()
    rl = make(2.0, burst_seconds=5, clock=clock)  # 2/s, bursts of 10
    for _ in range(10):
        rl.check("app", "k1")
    with pytest.raises(errors.Throttled) as exc:
        rl.check("app", "k1")
    assert exc.value.code == 11005 and exc.value.http_status == 429
    assert "this API key" in exc.value.details and "retry in 0.50 s" in exc.value.details
    clock.now += 0.5  # one token back
    rl.check("app", "k1")
    with pytest.raises(errors.Throttled):
        rl.check("app", "k1")
    clock.now += 100  # refills to the burst, never beyond
    for _ in range(10):
        rl.check("app", "k1")
    with pytest.raises(errors.Throttled):
        rl.check("app", "k1")


def test_keys_are_separate_and_the_app_bucket_caps_them_together(make: Make) -> None:
    clock = Clock()
    rl = make(1.0, burst_seconds=2, app_factor=2, clock=clock)  # key: 2 burst; app: 4 burst
    for key in ("k1", "k1", "k2", "k2"):
        rl.check("app", key)
    with pytest.raises(errors.Throttled, match="this API key"):
        rl.check("app", "k1")
    with pytest.raises(errors.Throttled, match="this app"):
        rl.check("app", "k3")  # a fresh key, but the app has used its 4
    rl.check("other-app", "k9")  # other apps are not affected


def test_a_refused_request_takes_no_token(make: Make) -> None:
    clock = Clock()
    rl = make(1.0, burst_seconds=1, app_factor=1, clock=clock)
    rl.check("app", "k1")
    for _ in range(5):
        with pytest.raises(errors.Throttled):
            rl.check("app", "k2")  # the app bucket is empty: k2's own token must stay
    clock.now += 1.0
    rl.check("app", "k2")


def test_zero_disables(make: Make) -> None:
    rl = make(0)
    for _ in range(10_000):
        rl.check("app", "k")


def accepted(rl: RateLimiter, key: str, tries: int, app: str = "app") -> int:
    n = 0
    for _ in range(tries):
        try:
            rl.check(app, key)
            n += 1
        except errors.Throttled:
            pass
    return n


def test_processes_on_one_database_share_one_limit(db: Database) -> None:
    """Two processes taking turns at eight times the rate get the burst plus the rate together, less
    at most one unspent lease each."""
    clock = Clock()
    one, two = (RateLimiter(20.0, db=db, clock=clock, lease_seconds=0.5) for _ in range(2))  # bursts of 200, leases of 10
    total = 0
    for _ in range(60):  # 2.95 s from the first requests to the last
        total += accepted(one, "k", 8) + accepted(two, "k", 8)
        clock.now += 0.05
    assert 200 + 59 - 2 * 10 <= total <= 200 + 59
    # the app's bucket is shared too: 0.2/s and bursts of 2 for an app's keys together
    three, four = (RateLimiter(100.0, db=db, clock=clock, app_factor=0.002) for _ in range(2))
    assert accepted(three, "k1", 1, app="app2") + accepted(four, "k2", 1, app="app2") == 2
    with pytest.raises(errors.Throttled, match="this app"):
        three.check("app2", "k3")


def test_concurrent_requests_in_two_processes_take_no_more_than_the_bucket_holds(db: Database) -> None:
    """Eight threads in each of two processes (each its own engine and pool, as two servers have),
    the clock standing still: exactly the burst passes, whatever interleaves."""
    from concurrent.futures import ThreadPoolExecutor

    clock = Clock()
    other = Database(db.url)
    try:
        limiters = [RateLimiter(20.0, db=d, clock=clock, lease_seconds=0.5) for d in (db, other)]  # 200; leases of 10
        with ThreadPoolExecutor(16) as pool:
            counts = list(pool.map(lambda i: accepted(limiters[i % 2], "k", 50), range(16)))
        assert sum(counts) == 200
    finally:
        other.dispose()


class Counting:
    """The database's buckets, counting leases."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.leases = 0

    def lease(self, *args: Any) -> Grant:
        self.leases += 1
        return self.inner.lease(*args)


def test_requests_are_not_a_round_trip_each(db: Database) -> None:
    clock = Clock()
    rl = RateLimiter(100.0, db=db, clock=clock)
    rl._shared = counting = Counting(rl._shared)
    assert accepted(rl, "k", 1000) == 1000  # the burst, from leases of 10 (key) and 50 (app)
    assert counting.leases == 100 + 20
    assert accepted(rl, "k", 1000) == 0  # refused: the empty bucket is asked once, not per request
    assert counting.leases == 121
    clock.now += 0.25  # 25 tokens are due
    assert accepted(rl, "k", 100) == 25 and counting.leases == 121 + 4 + 1  # key: 10, 10, 5, none; app: 50


def test_a_database_that_cannot_be_asked_leaves_the_process_to_limit_alone(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    db = Database(f"sqlite:///{tmp_path / 'not-migrated.db'}")  # no rate_buckets table yet
    try:
        rl = RateLimiter(1.0, db=db, burst_seconds=3, clock=clock)
        with caplog.at_level(logging.WARNING, "visionloop.ratelimit"):
            assert accepted(rl, "k", 5) == 3  # the burst, from this process's memory
        assert "could not lease from the database" in caplog.text
        upgrade(db.engine)
        clock.now += ratelimit.FALLBACK_SECONDS
        assert accepted(rl, "k", 5) == 3  # asked again: the database's bucket starts full
        with db.reading() as c:
            assert c.scalar(select(func.count()).select_from(RateBucket)) == 2
    finally:
        db.dispose()


def test_a_clock_that_goes_back_after_a_failed_lease_does_not_keep_the_process_alone(db: Database) -> None:
    """The database failed once, then the wall clock was stepped back (NTP) to before the failure:
    the process asks the database again at once, not after the step and the fallback's few seconds
    (alone, N processes would allow N times the limit for as long as the step)."""
    clock = Clock()
    one, two = (RateLimiter(1.0, db=db, burst_seconds=3, clock=clock) for _ in range(2))
    shared = one._shared
    assert shared is not None

    class Down:
        def lease(self, *_: Any) -> Grant:
            raise OperationalError("UPDATE rate_buckets ...", {}, Exception("server closed the connection"))

    one._shared = Down()  # type: ignore[assignment]
    assert accepted(one, "k", 1) == 1  # from this process's memory
    one._shared = shared  # the database is back ...
    clock.now -= 3600.0  # ... and the clock was an hour ahead
    assert accepted(two, "k", 5) == 3  # the shared bucket's burst, taken through the other process
    assert accepted(one, "k", 5) == 0  # asks the database (it failed "in the future"): the bucket is empty


def test_a_clock_that_was_ahead_and_is_corrected_stalls_no_bucket(make: Make) -> None:
    """A process whose clock ran an hour ahead emptied the buckets; once the clock is set right, each
    bucket refills at its rate from its first request after that, not an hour later."""
    clock = Clock()
    rl = make(1.0, burst_seconds=2, app_factor=1, clock=clock)
    clock.now += 3600.0
    for _ in range(2):
        rl.check("app", "k1")
    clock.now -= 3600.0
    refused = 0
    while True:
        try:
            rl.check("app", "k1")
            break
        except errors.Throttled:
            refused += 1
            assert refused <= 2, "the buckets stalled for the size of the clock's step"
            clock.now += 1.0


def test_memory_and_database_buckets_agree(db: Database) -> None:
    from visionloop.services.ratelimit import DatabaseBuckets, MemoryBuckets

    limit = Limit(rate=2.0, burst=5.0)
    # (want, held, clock step): exact binary fractions; the sixth step's clock goes back less than a
    # whole refill (2.5 s), the eighth's an hour
    steps = [(3.0, 0.0, 0.0), (3.0, 0.0, 0.0), (1.0, 0.5, 0.125), (10.0, 0.0, 1.0), (1.0, 0.5, 0.25),
             (4.0, 0.0, -2.0), (4.0, 0.0, 2.5), (4.0, 0.0, -3600.0), (4.0, 0.0, 1.0)]
    for buckets in (MemoryBuckets(), DatabaseBuckets(db)):
        now, grants = 100.0, []
        for want, held, dt in steps:
            now += dt
            grants.append(buckets.lease("t", "o", limit, want, held, now))
        assert grants == [Grant(3.0, 2.0), Grant(2.0, 0.0), Grant(0.0, 0.25), Grant(2.25, 0.0), Grant(0.5, 0.0),
                          Grant(0.0, 0.0), Grant(1.0, 0.0),  # back a little: no refill, none owed
                          Grant(0.0, 0.0), Grant(2.0, 0.0)], type(buckets).__name__  # back an hour: refills from then
