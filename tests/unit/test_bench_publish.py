"""Benchmarks record their latest figures on the results page, one line per script, dated."""

from __future__ import annotations

from pathlib import Path

from bench.common import publish


def test_a_run_replaces_the_line_of_the_run_before(tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmark results\n\nreviewed tables\n")
    publish("bench/load.py", "90 req/s", page)
    publish("bench/predict.py", "1.7x", page)
    publish("bench/load.py", "93 req/s", page)
    text = page.read_text()
    assert text.startswith("# Benchmark results\n\nreviewed tables\n\n## Latest runs\n")
    runs = [line for line in text.splitlines() if line.startswith("- `bench/")]
    assert [r.split("`")[1] for r in runs] == ["bench/load.py", "bench/predict.py"]
    assert runs[0].endswith(": 93 req/s") and " UTC; " in runs[0] and ", load " in runs[0]
