"""The visionloop command, run as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from visionloop.cli import main


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
    assert run("apps", "list", data=tmp_path).stdout.splitlines()[0] == "APP\tNAME\tCREATED (UTC)"
    assert "shop" in run("apps", "list", data=tmp_path).stdout
    created = run("keys", "create", "--app", "shop", "--scopes", "inputs,search", data=tmp_path)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    assert len(secret) == 32
    listed = run("keys", "list", data=tmp_path).stdout
    assert secret not in listed and "inputs,search" in listed and "active" in listed
    header, row = listed.splitlines()
    assert header.split("\t") == ["KEY ID", "APP", "STATE", "SCOPES", "DESCRIPTION"]
    key_id = row.split()[0]
    assert run("keys", "revoke", key_id, data=tmp_path).returncode == 0
    assert "revoked" in run("keys", "list", data=tmp_path).stdout


def test_errors_are_readable(tmp_path: Path) -> None:
    assert run("apps", "create", "shop", data=tmp_path).returncode == 0
    r = run("keys", "create", "--app", "ghost", data=tmp_path)
    assert r.returncode == 2 and "ghost" in r.stderr and "Traceback" not in r.stderr
    r = run("keys", "create", "--app", "x", "--scopes", "everything", data=tmp_path)
    assert r.returncode == 2


@pytest.mark.parametrize(("args", "says"), [
    (("learn", "--app", ""), "app '' does not exist"),  # it trained a version with app_id '': every app's
    (("learn", "--app", "nope"), "app 'nope' does not exist"),
    (("evaluate", "--app", "nope"), "app 'nope' does not exist"),
    (("keys", "list", "--app", "nope"), "app 'nope' does not exist"),
    (("keys", "create", "--app", "shop", "--scopes", ""), "unknown scopes"),  # not every scope
    (("feedback", "prune", "--days", "-1"), "must be from 0 to 36500 days"),
    (("outputs", "prune", "--days", "99999999999999"), "must be from 0 to 36500 days"),
    (("feedback", "erase", "--app", "shop", "--end-user-id", ""), "an end user id is required"),
    (("feedback", "export", "--output", "/nonexistent/dir/f.jsonl"), "FileNotFoundError"),
    (("evaluate", "--app", "shop", "--report", "/nonexistent/dir/r.html"), "FileNotFoundError"),
])
def test_a_refused_command_says_why_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                args: tuple[str, ...], says: str) -> None:
    """In-process (main() as the console script runs it): a subprocess per case took seconds each."""
    with pytest.raises(SystemExit) as made:
        main(["apps", "create", "shop", "--data-dir", str(tmp_path)])
    assert made.value.code == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        main([*args, "--data-dir", str(tmp_path)])
    out, err = capsys.readouterr()
    assert refused.value.code not in (0, None) and says in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3 and out == "", (out, err)
    with pytest.raises(SystemExit):
        main(["keys", "list", "--data-dir", str(tmp_path)])
    assert capsys.readouterr().out.splitlines()[1:] == []  # no key was created (an empty --scopes gave one with every scope)


@pytest.mark.parametrize("args", [("apps", "list"), ("keys", "list"), ("keys", "create", "--app", "shop"),
                                  ("feedback", "export", "--app", "shop"), ("outputs", "prune", "--days", "1"),
                                  ("evaluate", "--app", "shop"), ("learn", "--app", "shop")])
def test_a_data_dir_with_no_database_is_refused_and_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                               args: tuple[str, ...]) -> None:
    """A mistyped --data-dir: the command said 'no apps' (or 'app does not exist') from a new,
    empty store it made there. Only serve and apps create make one."""
    typo = tmp_path / "dta"
    with pytest.raises(SystemExit) as refused:
        main([*args, "--data-dir", str(typo)])
    out, err = capsys.readouterr()
    assert refused.value.code == 2 and f"no visionloop database at {typo / 'visionloop.db'}" in err, err
    assert out == "" and not typo.exists()


def test_a_database_url_naming_a_missing_sqlite_file_is_refused(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """The file is the URL's path without its query string (it named 'x.db?timeout=5')."""
    missing = tmp_path / "nowhere" / "x.db"
    with pytest.raises(SystemExit) as refused:
        main(["apps", "list", "--database-url", f"sqlite+pysqlite:///{missing}?timeout=5"])
    assert refused.value.code == 2 and f"no visionloop database at {missing}:" in capsys.readouterr().err
    assert not missing.parent.exists()


def test_a_database_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "visionloop", "apps", "list", "--database-url", "bogus://x"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "bogus" in r.stderr, r.stderr


RUNTIMES = ("onnxruntime", "onnx", "ai_edge_litert", "sklearn", "numpy", "PIL", "usearch", "matplotlib", "uvicorn")


def test_help_loads_no_model_runtime() -> None:
    """--help took seconds: the CLI imported every model runtime before parsing its arguments."""
    probe = ("import sys\nfrom visionloop.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({RUNTIMES!r})))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "[]", r.stdout + r.stderr


def test_settings_takes_the_common_flags_and_shows_the_values_in_effect(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VISIONLOOP_MAX_BATCH", "7")
    monkeypatch.delenv("VISIONLOOP_DATABASE_URL", raising=False)
    with pytest.raises(SystemExit) as done:
        main(["settings", "--data-dir", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert done.value.code == 0 and not (tmp_path / "d").exists()  # shown, not made
    assert f"VISIONLOOP_DATA_DIR={tmp_path / 'd'}\t(--data-dir; default './data')" in out, out
    assert "VISIONLOOP_MAX_BATCH=7\t(environment; default 128)" in out
    assert f"VISIONLOOP_DATABASE_URL=sqlite:///{tmp_path / 'd' / 'visionloop.db'}\t(default" in out
    with pytest.raises(SystemExit):
        main(["settings", "--database-url", "postgresql+psycopg://u:secret@db/x"])
    out = capsys.readouterr().out
    assert "secret" not in out and "postgresql+psycopg://u:***@db/x\t(--database-url" in out, out


def test_learn_shows_progress_when_no_worker_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With no server's worker to queue for, learn trains at once: its steps were trained silently."""
    with pytest.raises(SystemExit):
        main(["apps", "create", "shop", "--data-dir", str(tmp_path)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["learn", "--app", "shop", "--data-dir", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert done.value.code == 1 and out[0].startswith("training a new version of general-v1.3"), out
    assert "  aggregating feedback into labels" in out and any(line.startswith("  training on 0 labels")
                                                               for line in out), out
    assert out[-2].startswith("version ") and "21117" in out[-2], out
