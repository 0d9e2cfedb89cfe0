"""The docs stay true: every setting is documented, the two commands are what CI runs, and the
README's loop runs as written against a live server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.live import LiveServer, start_live_server
from visionloop.config import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
LOOP = ROOT / "examples" / "loop.sh"


def test_every_setting_is_documented() -> None:
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in configuration]
    assert not missing, f"settings missing from docs/configuration.md: {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/test" in readme and "scripts/serve" in readme
    assert "exec scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_the_readme_stays_a_newcomers_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) < 10_000, "README.md grew past a newcomer's page: move reference text to docs/"
    linked = set(re.findall(r"\(docs/([\w-]+\.md)", readme))
    assert {"api.md", "learning.md", "configuration.md", "postgresql.md", "reliability.md", "architecture.md",
            "benchmarks.md"} <= linked
    for name in linked & {p.name for p in (ROOT / "docs").glob("*.md")}:
        assert (ROOT / "docs" / name).read_text().startswith("# "), name


def test_the_readme_shows_the_loop_script_verbatim() -> None:
    assert LOOP.read_text().rstrip() in (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path, dict[str, str]]]:
    """A server as a user starts it, a folder holding a copy of examples/, and the shell's KEY and API."""
    for tool in ("bash", "curl", "jq", "base64"):
        assert shutil.which(tool), f"{tool} is missing: scripts/install test installs it"
    root = tmp_path_factory.mktemp("docs")
    server = start_live_server(root / "server")
    shutil.copytree(ROOT / "examples", root / "work" / "examples")
    try:
        yield server, root / "work", {**os.environ, "KEY": server.key, "API": f"{server.base_url}/v2"}
    finally:
        server.stop()


def run_shell(live: tuple[LiveServer, Path, dict[str, str]], script: str) -> list[str]:
    server, work, env = live
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True,
                         text=True, timeout=240)
    assert run.returncode == 0 and run.stderr == "", f"{run.stdout}\n{run.stderr}\n{server.log_tail()}"
    return run.stdout.splitlines()


@pytest.mark.slow
def test_the_readme_loop_runs_and_the_model_learns(live: tuple[LiveServer, Path, dict[str, str]]) -> None:
    """Add photos, predict, feedback on each output, train, activate, predict again: 'chelsea' appears."""
    lines = run_shell(live, LOOP.read_text())
    assert sum(line.startswith("added ") for line in lines) == 20
    assert sum(line.endswith("feedback Ok") for line in lines) == 20, lines
    searched = next(line for line in lines if line.startswith('{"search_id"'))
    assert searched.count('"cat-') == 10, searched
    before = next(line for line in lines if line.startswith('{"top"'))
    assert '"chelsea":[]' in before, before
    trained = next(line for line in lines if '"status":21100' in line)
    assert lines[lines.index(trained) + 1] == "Ok", lines  # activated
    after = re.search(r'"chelsea":\[([0-9.]+)\]', lines[-1])
    assert after and float(after.group(1)) > 0.9, lines[-1]


@pytest.mark.slow
def test_the_custom_model_example_runs(live: tuple[LiveServer, Path, dict[str, str]]) -> None:
    """docs/learning.md's example: a model over 'cat' trained from annotated inputs, then predicting."""
    text = (ROOT / "docs" / "learning.md").read_text()
    block = text[text.index("```bash\nAPI=") + len("```bash\n"):]
    lines = run_shell(live, block[:block.index("```")])
    assert lines.count("Ok") == 21 and '"code":21100' in lines[-2], lines
    predicted = re.fullmatch(r'\[\{"id":"cat","value":([0-9.]+)\}\]', lines[-1])
    assert predicted and float(predicted.group(1)) > 0.9, lines[-1]
