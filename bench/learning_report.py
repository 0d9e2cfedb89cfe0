"""bench/learning.py's plots and summary, from its results."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.learning_common import OUT, TRAINED, log  # noqa: E402
from bench.learning_plain import summary_rows  # noqa: E402


def plots(results: dict[str, Any]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    acc = results.get("accuracy", {})
    if acc.get("curve"):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        pts = [(r["events"], r["accuracy"]) for r in acc["curve"] if r.get("accuracy") is not None]
        if pts:
            xs = [max(x, 30) for x, _ in pts]
            ax.plot(xs, [y for _, y in pts], "o-", label="trained version (by id)")
        served = [(max(r["events"], 30), r.get("served_accuracy", acc["start"] if r["events"] == 0 else None))
                  for r in acc["curve"]]
        served = [(x, y) for x, y in served if y is not None]
        if served:
            ax.plot([x for x, _ in served], [y for _, y in served], "s--", alpha=0.6, label="active (promoted) version")
        ax.axhline(acc["start"], color="grey", ls=":", label=f"start: zero-shot {acc['start']:.3f}")
        if "oracle" in acc:
            o = acc["oracle"]["accuracy"]
            ax.axhline(o, color="green", ls="--", label=f"oracle linear probe {o:.3f}")
            ax.axhline(acc["start"] + 0.95 * (o - acc["start"]), color="red", ls=":", lw=0.8, label="95% of the gap")
        ax.set_xscale("log")
        ticks = [30] + [r["events"] for r in acc["curve"][1:]]
        ax.set_xticks(ticks, ["0"] + [str(t) for t in ticks[1:]])
        ax.minorticks_off()
        ax.set_xlabel("feedback events (10 labels each; 0 drawn at 30)")
        ax.set_ylabel("held-out top-1 accuracy (10 classes)")
        ax.set_title("Fashion-MNIST: learning from end-user feedback")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(OUT / "learning_accuracy.png", dpi=120)
        plt.close(fig)
        made.append("learning_accuracy.png")
        lat = [(r["labels"], r["seconds_since_last_feedback"]) for r in acc["curve"]
               if r.get("seconds_since_last_feedback") is not None]
        if lat:
            fig, ax = plt.subplots(figsize=(5.5, 3.8))
            ax.plot([x for x, _ in lat], [y for _, y in lat], "o-")
            ax.set_xscale("log")
            ax.set_xticks([x for x, _ in lat], [str(x) for x, _ in lat])
            ax.minorticks_off()
            ax.set_xlabel("labels in the app")
            ax.set_ylabel("seconds: last feedback -> trained & decided")
            ax.set_title("Time to a new version")
            fig.tight_layout()
            fig.savefig(OUT / "learning_latency.png", dpi=120)
            plt.close(fig)
            made.append("learning_latency.png")
    con = results.get("concepts", {})
    rows = [r for r in con.get("rows", []) if r.get("auc")]
    if rows:
        fig, ax = plt.subplots(figsize=(5.5, 3.8))
        for cid in rows[0]["auc"]:
            ax.plot([r["positives"] for r in rows], [r["auc"].get(cid) or np.nan for r in rows], "o-", alpha=0.6,
                    label=cid)
        ax.plot([r["positives"] for r in rows], [r.get("mean_auc") or np.nan for r in rows], "k-", lw=2,
                label="mean (users 10% wrong)")
        careful = [r for r in con.get("rows_careful_users", []) if r.get("auc")]
        if careful:
            ax.plot([r["positives"] for r in careful], [r.get("mean_auc") or np.nan for r in careful], "k--", lw=2,
                    label="mean (careful users)")
        ax.axhline(0.9, color="red", ls=":", label="target 0.90")
        ax.set_xlabel("positive examples per concept (and 2x negatives)")
        ax.set_ylabel("held-out ROC AUC")
        ax.set_title("New concepts from feedback (emoji)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(OUT / "learning_concepts.png", dpi=120)
        plt.close(fig)
        made.append("learning_concepts.png")
    se = results.get("search", {})
    if se.get("before"):
        keys = list(se["before"])
        fig, ax = plt.subplots(figsize=(6, 3.8))
        x = np.arange(len(keys))
        series = [("before clicks", se["before"]), ("after clicks (served)", se.get("after")),
                  ("refused version activated by hand", se.get("after_if_activated"))]
        series = [(name, d) for name, d in series if d]
        width = 0.8 / len(series)
        for j, (name, d) in enumerate(series):
            ax.bar(x - 0.4 + width * (j + 0.5), [d.get(k, {}).get("ndcg10", 0) for k in keys], width, label=name)
        ax.set_xticks(x, [f"{k}\n({se['before'][k]['queries']} q)" for k in keys])
        ax.set_ylabel("NDCG@10, held-out queries")
        ax.set_title(f"Search re-ranking from {se.get('clicks', {}).get('clicks', 0)} position-biased clicks")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(OUT / "learning_search.png", dpi=120)
        plt.close(fig)
        made.append("learning_search.png")
    mal = results.get("malicious", {})
    names = {"honest_only": "honest, 3 judges", "malicious_20pct": "20% malicious, 3 judges",
             "malicious_20pct_2_judges": "20% malicious, 2 judges"}
    bars = [(f"{names[n]}\n{lab.replace('_', ' ')}", mal[n][lab].get("accuracy"), lab) for n in names
            for lab in ("no_reliability", "reliability") if "status" in mal.get(n, {}).get(lab, {})]
    failed = {j for j, (_, b, _) in enumerate(bars) if b is None}
    bars = [(a, 0.0 if b is None else b, lab) for a, b, lab in bars]
    if len(bars) > len(failed):
        fig, ax = plt.subplots(figsize=(9.5, 4))
        colours = {"no_reliability": "tab:red", "reliability": "tab:blue"}
        ax.bar(range(len(bars)), [b for _, b, _ in bars], color=[colours[lab] for *_, lab in bars])
        ax.set_xticks(range(len(bars)), [a for a, _, _ in bars], fontsize=7)
        lows = [b for j, (_, b, _) in enumerate(bars) if j not in failed]
        bottom = max(0.0, min(lows) - 0.1)
        ax.set_ylim(bottom, min(1.0, max(lows + [acc.get("oracle", {}).get("accuracy", 0)]) + 0.05))
        for j, (_, b, _) in enumerate(bars):
            if j in failed:
                ax.text(j, bottom + 0.01, "training\nfailed", ha="center", fontsize=8, color="tab:red")
            else:
                ax.text(j, b + 0.003, f"{b:.3f}", ha="center", fontsize=8)
        if acc.get("oracle"):
            ax.axhline(acc["oracle"]["accuracy"], color="green", ls="--", lw=0.8, label="oracle")
            ax.legend(fontsize=8)
        ax.set_ylabel("held-out top-1 accuracy")
        ax.set_title("Malicious end users (coordinated look-alike answers), reliability weighting on/off",
                     fontsize=9)
        fig.tight_layout()
        fig.savefig(OUT / "learning_malicious.png", dpi=120)
        plt.close(fig)
        made.append("learning_malicious.png")
    return made


def summary(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value, target) rows."""
    rows: list[tuple[str, str, str]] = []
    f = lambda v, spec=".3f": "-" if v is None else format(v, spec)  # noqa: E731
    acc = results.get("accuracy", {})
    if "start" in acc:
        rows.append(("accuracy: start (zero-shot)", f(acc["start"]), ""))
    if "oracle" in acc:
        rows.append(("accuracy: oracle linear probe", f(acc["oracle"]["accuracy"]), ""))
    for r in acc.get("curve", [])[1:]:
        target = ">= 0.95 of gap" if r["events"] == 1000 else ""
        rows.append((f"accuracy after {r['events']} events ({r['labels']} labels)",
                     f"{f(r.get('accuracy'))} (gap closed {f(r.get('gap_closed'), '.2f')})", target))
    for r in acc.get("curve", [])[1:]:
        if r.get("seconds_since_last_feedback") is not None:
            rows.append((f"seconds last feedback -> version at {r['labels']} labels",
                         f"{r['seconds_since_last_feedback']:.1f} (promoted: {r['promoted']})",
                         "headline at 10000 labels" if r["labels"] == 10000 else ""))
    for key, who in (("rows", "users 10% wrong"), ("rows_careful_users", "careful users")):
        for r in results.get("concepts", {}).get(key, []):
            learned = (f" ({r['concepts_learned']}/{r.get('concepts_total', len(r['auc']))} heads learned)"
                       if r.get("auc") else "")
            rows.append((f"new concepts ({who}): mean ROC AUC at {r['positives']} positives",
                         f(r.get("mean_auc")) + learned, ">= 0.90" if r["positives"] == 10 and key == "rows" else ""))
    rows += summary_rows(results)
    se = results.get("search", {})
    if se.get("before"):
        after = se.get("after", {}).get("all", {}).get("ndcg10")
        promoted = se.get("version", {}).get("promoted")
        rows.append(("search NDCG@10 held-out: before -> after clicks",
                     f"{f(se['before']['all']['ndcg10'])} -> {f(after)} ({f(se.get('relative_gain'), '+.1%')}; "
                     f"promoted: {promoted})", ">= +10% relative"))
        for group, g in se.get("memory_gains", {}).items():
            rows.append((f"search NDCG@10 {group} queries, click memory (no training)",
                         f"{f(g['before'])} -> {f(g['after'])} ({f(g['relative_gain'], '+.1%')})",
                         f">= {g['target']:+.0%} relative"))
        if se.get("click_to_show"):
            rows.append(("seconds from a click to the next identical search showing it",
                         f(se["click_to_show"]["seconds"], ".3f"), ""))
        if se.get("after_if_activated"):
            rows.append(("search NDCG@10 held-out, refused version activated",
                         f"{f(se['after_if_activated']['all']['ndcg10'])} "
                         f"({f(se.get('relative_gain_if_activated'), '+.1%')})", ""))
    mal = results.get("malicious", {})
    for n in ("honest_only", "malicious_20pct", "malicious_20pct_2_judges"):
        for lab in ("no_reliability", "reliability"):
            v = mal.get(n, {}).get(lab)
            if v is not None:
                judges = mal[n].get("judges_per_image", 3)
                value = f(v.get("accuracy")) if v.get("status") in (TRAINED, None) else \
                    f"not trained: {v.get('status')} {v.get('status_description', '')}"[:70]
                rows.append((f"{n.replace('_', ' ').replace(' 2 judges', '')} ({judges} judges/image): accuracy, "
                             f"{lab.replace('_', ' ')}", value, ""))
    return rows


def report(results: dict[str, Any]) -> None:
    made = plots(results)
    log("\n== summary ==")
    rows = summary(results)
    width = max((len(r[0]) for r in rows), default=10)
    for name, value, target in rows:
        log(f"{name:<{width}}  {value:<36} {target}")
    for m, state in results.get("training_endpoint", {}).items():
        if not state["available"]:
            log(f"\nnot reached ({m}): {state.get('reason')}")
    log(f"\nwall time {results['wall_seconds']:.0f} s; wrote {OUT / 'learning.json'} and "
        f"{', '.join(str(OUT / m) for m in made) or 'no plots'}")
