"""The alarm check hands changed alarms to the webhook without waiting for it: a slow or dead URL
(retried with backoff for tens of seconds) must not hold up the check of every other app."""

from __future__ import annotations

import threading
import time
from typing import Any

from visionloop.services.monitoring.webhook import Outbox


def test_the_check_does_not_wait_for_a_slow_webhook() -> None:
    release, delivered = threading.Event(), []

    def slow(alarms: list[dict[str, Any]]) -> bool:
        release.wait(10)
        delivered.append(alarms)
        return True

    outbox = Outbox(slow)
    try:
        started = time.monotonic()
        outbox([{"id": "a1"}])
        outbox([{"id": "a2"}])
        assert time.monotonic() - started < 1 and delivered == []
        release.set()
    finally:
        outbox.close()
    assert delivered == [[{"id": "a1"}], [{"id": "a2"}]]  # in order, all sent before close returns


def test_a_full_outbox_drops_batches_rather_than_block() -> None:
    release, delivered = threading.Event(), []

    def slow(alarms: list[dict[str, Any]]) -> bool:
        release.wait(10)
        delivered.append(alarms)
        return True

    outbox = Outbox(slow, capacity=1)
    try:
        started = time.monotonic()
        for i in range(5):
            outbox([{"id": f"a{i}"}])
        assert time.monotonic() - started < 1
        release.set()
    finally:
        outbox.close()
    assert 1 <= len(delivered) <= 2 and delivered[0] == [{"id": "a0"}]


def test_closing_a_full_outbox_does_not_hang() -> None:
    sending, release = threading.Event(), threading.Event()

    def stuck(alarms: list[dict[str, Any]]) -> bool:
        sending.set()
        return release.wait(10)

    outbox = Outbox(stuck, capacity=1)
    outbox([{"id": "a0"}])
    assert sending.wait(5)
    outbox([{"id": "a1"}])  # waits, filling the outbox
    started = time.monotonic()
    outbox.close(timeout=0.2)
    assert time.monotonic() - started < 2
    release.set()
