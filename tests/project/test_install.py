"""scripts/install: tested versions by default, and no pip run when nothing it installs from changed."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
FAKE_PYTHON = '#!/usr/bin/env bash\necho "$*" >> "$(dirname "$0")/../calls"\n'


def checkout(tmp_path: Path) -> Path:
    """The files scripts/install reads, beside a venv whose python only records how it was called."""
    (tmp_path / "scripts").mkdir()
    for name in ("scripts/install", "pyproject.toml", "requirements.lock"):
        shutil.copy(ROOT / name, tmp_path / name)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def install(repo: Path, *, unlocked: bool = False) -> list[str]:
    """Run scripts/install (no extras, as scripts/serve does); the pip calls it made."""
    env = {"PATH": "/usr/bin:/bin", **({"VISIONLOOP_UNLOCKED": "1"} if unlocked else {})}
    calls = repo / ".venv" / "calls"
    calls.unlink(missing_ok=True)
    subprocess.run(["bash", str(repo / "scripts" / "install")], check=True, env=env, timeout=60)
    return calls.read_text().splitlines() if calls.exists() else []


def test_install_runs_pip_only_when_what_it_installs_from_changed(tmp_path: Path) -> None:
    repo = checkout(tmp_path)
    first = install(repo)
    assert first[0] == "-m pip install --quiet -c requirements.lock -e ." and "--no-deps" in first[1], first
    assert install(repo) == []  # scripts/serve's every later start: no pip, no setuptools screens
    with open(repo / "pyproject.toml", "a") as fp:
        fp.write("\n# a dependency changed\n")
    assert len(install(repo)) == 2
    assert install(repo, unlocked=True)[0] == "-m pip install --quiet -e ."  # the newest allowed, to relock


def test_the_lock_pins_every_dependency_within_its_bounds() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = dict(re.findall(r"^([\w.-]+)==(\S+)$", (ROOT / "requirements.lock").read_text(), re.M))
    pins = {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins.items()}
    for text in project["dependencies"] + project["optional-dependencies"]["test"]:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{name} is not in requirements.lock"
        assert req.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {req.specifier}"


def test_dependencies_whose_internals_are_used_have_an_upper_bound() -> None:
    deps = {Requirement(d).name.lower(): Requirement(d).specifier
            for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    for name, too_new in (("sqlalchemy", "3.0"), ("fastapi", "1.0"), ("onnxruntime", "2.0"), ("onnx", "2.0")):
        assert not deps[name].contains(too_new), name
