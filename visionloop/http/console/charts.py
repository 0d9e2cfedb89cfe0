"""The console's charts as data: each a spec that ``static/console/console.js`` draws with uPlot
in the browser (a page embeds it in a JSON data block, which never runs). x values are shared by
a chart's series (``None`` where a series has no point); a time axis is in Unix seconds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from visionloop.learning.curves import Curve
from visionloop.services.console import DayCount
from visionloop.services.training.data import display

Chart = dict[str, Any]
Series = tuple[str, Mapping[float, float | None]]


def chart(title: str, series: Sequence[Series], *, xlabel: str, ylabel: str, time: bool = False,
          bars: bool = False, counts: bool = False, ymax: float | None = None, xmax: float | None = None) -> Chart:
    """A chart of ``series`` ((label, {x: y})) over the union of their x values, ascending; a
    chart of ``counts`` has its y axis start at 0."""
    xs = sorted({x for _, points in series for x in points})
    spec: Chart = {"title": title, "xlabel": xlabel, "ylabel": ylabel, "time": time, "bars": bars, "counts": counts,
                   "x": xs,
                   "series": [{"label": label, "values": [points.get(x) for x in xs]} for label, points in series]}
    if ymax is not None:
        spec["ymax"] = ymax
    if xmax is not None:
        spec["xmax"] = xmax
    return spec


def _day(day: str) -> float:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc).timestamp()


def last_days(n: int) -> list[str]:
    """The UTC dates from ``n`` days ago to today (what a window of ``n`` times 24 hours touches)."""
    today = dt.datetime.now(dt.timezone.utc).date()
    return [(today - dt.timedelta(days=k)).isoformat() for k in range(n, -1, -1)]


def feedback_per_day(counts: Iterable[DayCount], days: Iterable[str]) -> Chart | None:
    """Judgements per UTC day of ``days``, one line per event type and verdict (0 on a day without)."""
    by: dict[str, dict[float, float | None]] = {}
    for c in counts:
        by.setdefault(f"{c.event_type}: {c.verdict}", {})[_day(c.day)] = float(c.count)
    if not by:
        return None
    axis = [_day(d) for d in days]
    return chart("Feedback per day, by type and verdict",
                 [(label, {x: points.get(x, 0.0) for x in axis}) for label, points in sorted(by.items())],
                 xlabel="day (UTC)", ylabel="judgements", time=True, counts=True)


def search_over_time(by_day: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> Chart | None:
    """CTR and MRR per UTC day, one line of each per query kind."""
    lines: dict[str, dict[float, float | None]] = {}
    for day, kinds in by_day.items():
        for kind, m in kinds.items():
            for figure in ("ctr", "mrr"):
                lines.setdefault(f"{figure.upper()} ({kind})", {})[_day(day)] = (m.get(figure) or {}).get("value")
    if not lines:
        return None
    return chart("CTR and MRR per day", sorted(lines.items()), xlabel="day (UTC)", ylabel="rate", time=True, ymax=1)


def click_positions(counts: Mapping[str, int]) -> Chart | None:
    """Clicks per position of the clicked hit: how steeply attention falls down the page."""
    if not counts:
        return None
    return chart("Where users click", [("clicks", {float(int(r)): float(n) for r, n in counts.items()})],
                 xlabel="position of the clicked hit", ylabel="clicks", bars=True, counts=True)


def pr_curves(curves: Sequence[Curve], names: Mapping[str, str]) -> Chart | None:
    """Precision against recall per concept; where a recall repeats, its best precision."""
    if not curves:
        return None
    series = []
    for c in curves:
        points: dict[float, float | None] = {}
        for x, y in zip(c.x, c.y):
            points[x] = max(y, points.get(x) or 0.0)
        series.append((f"{display(c.concept, names)} (n={c.n})", points))
    return chart("Precision-recall from feedback", series, xlabel="recall", ylabel="precision", ymax=1, xmax=1)


def calibration(curve: Curve | None) -> Chart | None:
    """The reliability diagram beside the diagonal a calibrated version follows."""
    if curve is None:
        return None
    return chart("Calibration from feedback", [
        ("calibrated", {0.0: 0.0, 1.0: 1.0}), (f"this version (n={curve.n})", dict(zip(curve.x, curve.y)))],
        xlabel="score the version gave", ylabel="share end users said present", ymax=1, xmax=1)


def quality_over_time(points: Sequence[tuple[dt.datetime, Mapping[str, Any], bool]]) -> Chart | None:
    """Each trained version's cross-validated macro ROC AUC with its interval, promoted or kept."""
    if not points:
        return None
    at = [(p[0] if p[0].tzinfo else p[0].replace(tzinfo=dt.timezone.utc)).timestamp() for p in points]
    series: list[Series] = [
        ("macro ROC AUC", {t: p[1]["value"] for t, p in zip(at, points)}),
        ("low", {t: p[1].get("low") for t, p in zip(at, points)}),
        ("high", {t: p[1].get("high") for t, p in zip(at, points)}),
        ("promoted", {t: p[1]["value"] if p[2] else None for t, p in zip(at, points)})]
    return chart("Quality of each trained version over time", series, xlabel="trained (UTC)",
                 ylabel="cross-validated macro ROC AUC", time=True, ymax=1)
