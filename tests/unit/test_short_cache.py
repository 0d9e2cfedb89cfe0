"""The short-lived cache of keys and model views: expiry, clearing, and what it never keeps."""

from __future__ import annotations

import pytest

from visionloop.services.short_cache import ShortCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def counting_loader(values: list[str]):  # type: ignore[no-untyped-def]
    calls = []

    def load() -> str:
        calls.append(1)
        return values[len(calls) - 1]

    return load, calls


def test_a_value_is_reused_until_it_is_ttl_old() -> None:
    clock = Clock()
    cache: ShortCache[str] = ShortCache(ttl=1.0, clock=clock)
    load, calls = counting_loader(["v1", "v2"])
    assert cache.get("k", load) == "v1"
    clock.now += 0.99
    assert cache.get("k", load) == "v1" and len(calls) == 1
    assert cache.peek("k") == "v1"
    clock.now += 0.02
    assert cache.peek("k") is None
    assert cache.get("k", load) == "v2" and len(calls) == 2


def test_clear_forgets_at_once() -> None:
    cache: ShortCache[str] = ShortCache(ttl=60.0, clock=Clock())
    load, calls = counting_loader(["old", "new"])
    assert cache.get("k", load) == "old"
    cache.clear()
    assert cache.get("k", load) == "new" and len(calls) == 2


def test_a_value_loaded_across_a_clear_is_not_kept() -> None:
    """A change committed while a request was reading must not leave the old answer cached."""
    cache: ShortCache[str] = ShortCache(ttl=60.0, clock=Clock())

    def load_during_change() -> str:
        cache.clear()  # the change lands while this load runs
        return "read before the change"

    assert cache.get("k", load_during_change) == "read before the change"
    assert cache.get("k", lambda: "current") == "current"


def test_errors_are_not_cached() -> None:
    cache: ShortCache[str] = ShortCache(ttl=60.0, clock=Clock())

    def fail() -> str:
        raise KeyError("unknown key")

    with pytest.raises(KeyError):
        cache.get("k", fail)
    assert cache.get("k", lambda: "created since") == "created since"


def test_the_cache_stays_bounded() -> None:
    cache: ShortCache[int] = ShortCache(ttl=60.0, max_entries=3, clock=Clock())
    for i in range(10):
        cache.get(i, lambda i=i: i)
    assert len(cache._entries) <= 3
    assert cache.get(9, lambda: -1) == 9
