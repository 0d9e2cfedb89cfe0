"""The click memory's part of bench/learning.py's search section: how fast a click shows, and the gains.

A click needs no training run to count: the next identical search reads it from the log. This
measures the seconds from a click's answer to the first identical search whose ranking moved the
clicked hit up, and summarises NDCG@10 before and after the clicks on the clicked ("seen") and
held-out ("unseen") queries against the issue's targets (+15% and +10% relative, never below -1%).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

SEEN_TARGET, UNSEEN_TARGET, FLOOR = 0.15, 0.10, -0.01

Search = Callable[[], tuple[str, list[str]]]  # one identical search: (search id, hit ids in order)
Click = Callable[[str, str], float]  # (search id, hit id) -> monotonic time the click was answered


def click_to_show(search: Search, click: Click, *, rank: int = 10, timeout: float = 30.0) -> dict[str, Any]:
    """Click the hit at ``rank`` and search again until it ranks higher: seconds from click to shown."""
    search_id, hits = search()
    hit = hits[rank - 1]
    clicked_at = click(search_id, hit)
    tries = 0
    while time.monotonic() - clicked_at < timeout:
        tries += 1
        _, again = search()
        if hit in again and again.index(hit) + 1 < rank:
            return {"seconds": round(time.monotonic() - clicked_at, 3), "searches": tries, "rank_before": rank,
                    "rank_after": again.index(hit) + 1}
    return {"seconds": None, "searches": tries, "rank_before": rank, "rank_after": None}


def gains(res: dict[str, Any], after: str = "after_memory") -> dict[str, Any]:
    """Relative NDCG@10 gains of the clicked and held-out queries, and whether each target is met."""
    out: dict[str, Any] = {}
    for name, before, later, target in (("seen", "before_clicked_queries", f"{after}_clicked_queries", SEEN_TARGET),
                                        ("unseen", "before", after, UNSEEN_TARGET)):
        if before not in res or later not in res:
            continue
        b, a = res[before]["all"]["ndcg10"], res[later]["all"]["ndcg10"]
        gain = (a - b) / b if b else None
        out[name] = {"before": round(b, 4), "after": round(a, 4), "relative_gain": gain, "target": target,
                     "met": gain is not None and gain >= target, "above_floor": gain is not None and gain >= FLOOR}
    return out
