"""The README stays true: every setting is documented and the two commands are what CI runs."""

from __future__ import annotations

from pathlib import Path

from visionloop.config import SETTINGS

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in readme]
    assert not missing, f"settings missing from README.md: {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/test" in readme and "scripts/serve" in readme
    assert "exec scripts/test" in (ROOT / ".ci" / "run").read_text()
