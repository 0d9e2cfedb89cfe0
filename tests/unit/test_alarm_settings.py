"""Alarm settings are checked at startup, and the server's alarm loop checks every app on its own."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from visionloop.config import SettingsError, load_settings
from visionloop.core import VisionLoop
from visionloop.services.monitoring.loop import AlarmLoop


@pytest.mark.parametrize(("name", "value", "message"), [
    ("alarm_drift_alpha", 0.0001, "VISIONLOOP_ALARM_DRIFT_ALPHA must be from 0.001"),
    ("alarm_alpha", 1.0, "VISIONLOOP_ALARM_ALPHA must be from"),
    ("alarm_drift_window", 0, "VISIONLOOP_ALARM_DRIFT_WINDOW must be positive"),
    ("alarm_webhook_url", "ftp://hooks.example.com/x", "VISIONLOOP_ALARM_WEBHOOK_URL='ftp://hooks.example.com/x'"),
])
def test_bad_alarm_settings_are_refused_by_name(name: str, value: object, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        load_settings({name: value}, environ={})


def test_the_alarm_loop_checks_every_app_periodically(core: VisionLoop, monkeypatch: pytest.MonkeyPatch) -> None:
    checked = threading.Event()
    monkeypatch.setattr(core.alarms, "check_all", lambda: checked.set() or 0)
    loop = AlarmLoop(core.alarms, check_seconds=0.05)
    loop.start()
    try:
        assert checked.wait(10)
    finally:
        loop.stop()


def test_visionloop_settings_lists_the_alarm_settings_without_the_webhook_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from visionloop.cli import main

    monkeypatch.setenv("VISIONLOOP_ALARM_WEBHOOK_SECRET", "hush-hush")
    with pytest.raises(SystemExit):
        main(["settings", "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "VISIONLOOP_ALARM_DRIFT_WINDOW=100\t(default" in out and "VISIONLOOP_ALARM_WEBHOOK_URL=" in out
    assert "hush-hush" not in out and "VISIONLOOP_ALARM_WEBHOOK_SECRET=(set, not shown)" in out
