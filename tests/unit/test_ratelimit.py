"""Token buckets per key and per app, on a fake clock."""

from __future__ import annotations

import pytest

from visionloop import errors
from visionloop.services.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_steady_rate() -> None:
    clock = Clock()
    rl = RateLimiter(2.0, burst_seconds=5, clock=clock)  # 2/s, bursts of 10
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


def test_keys_are_separate_and_the_app_bucket_caps_them_together() -> None:
    clock = Clock()
    rl = RateLimiter(1.0, burst_seconds=2, app_factor=2, clock=clock)  # key: 2 burst; app: 4 burst
    for key in ("k1", "k1", "k2", "k2"):
        rl.check("app", key)
    with pytest.raises(errors.Throttled, match="this API key"):
        rl.check("app", "k1")
    with pytest.raises(errors.Throttled, match="this app"):
        rl.check("app", "k3")  # a fresh key, but the app has used its 4
    rl.check("other-app", "k9")  # other apps are not affected


def test_a_refused_request_takes_no_token() -> None:
    clock = Clock()
    rl = RateLimiter(1.0, burst_seconds=1, app_factor=1, clock=clock)
    rl.check("app", "k1")
    for _ in range(5):
        with pytest.raises(errors.Throttled):
            rl.check("app", "k2")  # the app bucket is empty: k2's own token must stay
    clock.now += 1.0
    rl.check("app", "k2")


def test_zero_disables() -> None:
    rl = RateLimiter(0)
    for _ in range(10_000):
        rl.check("app", "k")
