"""The visionloop command, run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "visionloop", *args, "--data-dir", str(data)],
                          capture_output=True, text=True, timeout=120)


def test_help_is_useful() -> None:
    out = subprocess.run([sys.executable, "-m", "visionloop", "--help"], capture_output=True, text=True).stdout
    for word in ("serve", "keys", "apps", "settings"):
        assert word in out
    out = subprocess.run([sys.executable, "-m", "visionloop", "keys", "create", "--help"], capture_output=True,
                         text=True).stdout
    assert "--scopes" in out and "--app" in out


def test_apps_and_keys_lifecycle(tmp_path: Path) -> None:
    assert run("apps", "create", "shop", data=tmp_path).returncode == 0
    assert "shop" in run("apps", "list", data=tmp_path).stdout
    created = run("keys", "create", "--app", "shop", "--scopes", "inputs,search", data=tmp_path)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert len(secret) == 32
    listed = run("keys", "list", data=tmp_path).stdout
    assert secret not in listed and "inputs,search" in listed and "active" in listed
    key_id = listed.split()[0]
    assert run("keys", "revoke", key_id, data=tmp_path).returncode == 0
    assert "revoked" in run("keys", "list", data=tmp_path).stdout


def test_errors_are_readable(tmp_path: Path) -> None:
    r = run("keys", "create", "--app", "ghost", data=tmp_path)
    assert r.returncode == 2 and "ghost" in r.stderr and "Traceback" not in r.stderr
    r = run("keys", "create", "--app", "x", "--scopes", "everything", data=tmp_path)
    assert r.returncode == 2
