"""An evaluation report a person would rather look at than read: one HTML file with plots.

Quality over time (each version's cross-validated macro ROC AUC with its interval, as trained; of
its new concepts where it shares none with the version before), the live per-concept figures of
the evaluated version (F1 and ROC AUC with intervals and label counts; thin figures greyed),
precision-recall curves of the best-labelled concepts, how well its scores are calibrated, which
concept it named where users said another, and for the best-labelled concepts a few images it got
right, wrong and missed.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import threading
from collections.abc import Hashable, Mapping
from typing import Any, NamedTuple

import numpy as np

from visionloop.learning import curves as curves_of
from visionloop.learning.metrics_concepts import ConceptRecord
from visionloop.services.training.data import display
from visionloop.store.tables import ModelVersion

# pyplot keeps global state (the current figure): one thread draws at a time. Callers that may
# run in several threads at once (the console's pages) hold it while they draw.
PLOTTING = threading.Lock()


@functools.cache
def _pyplot() -> Any:
    """pyplot on the Agg backend, imported when the first figure is drawn: a server that never
    draws a report (or the CLI printing a table) does not pay for importing matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def quality_points(versions: list[ModelVersion]) -> list[tuple[Any, dict[str, Any], bool]]:
    """(created at, cross-validated macro ROC AUC estimate, promoted) of each trained version with
    one, oldest first."""
    points = []
    for v in sorted(versions, key=lambda v: v.created_at):
        holdout = (v.metrics or {}).get("holdout", {})
        auc = (holdout.get("challenger", {}) or {}).get("macro_auc") or _mean_new_concept_auc(holdout)
        if auc and auc.get("value") is not None:
            points.append((v.created_at, auc, bool((v.params or {}).get("promoted", False))))
    return points


def quality_over_time(versions: list[ModelVersion]) -> str | None:
    points = quality_points(versions)
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    xs = [p[0] for p in points]
    ys = [p[1]["value"] for p in points]
    lo = [p[1]["value"] - (p[1]["low"] if p[1]["low"] is not None else p[1]["value"]) for p in points]
    hi = [(p[1]["high"] if p[1]["high"] is not None else p[1]["value"]) - p[1]["value"] for p in points]
    ax.errorbar(xs, ys, yerr=[lo, hi], fmt="-o", capsize=3, color="#2563eb")
    for x, y, p in zip(xs, ys, points):
        ax.annotate("promoted" if p[2] else "kept", (x, y), textcoords="offset points", xytext=(0, 8),
                    ha="center", fontsize=7, color="#15803d" if p[2] else "#b91c1c")
    ax.set_ylabel("cross-validated macro ROC AUC")
    ax.set_title("Quality of each trained version over time")
    ax.set_ylim(0, 1.05)
    fig.autofmt_xdate()
    return _png(fig)


def _mean_new_concept_auc(holdout: dict[str, Any]) -> dict[str, Any] | None:
    """A version that only added concepts has no shared figure: the mean of their cross-validated AUCs."""
    values = [c["roc_auc"]["value"] for c in holdout.get("new_concepts", {}).values()
              if c["roc_auc"]["value"] is not None]
    return {"value": float(np.mean(values)), "low": None, "high": None} if values else None


def per_concept(live: dict[str, Any], limit: int = 25) -> str | None:
    """F1 and ROC AUC per concept of a concept model; precision, recall and F1 per concept of a
    detection model (its live metrics count TP/FP/FN instead of labels)."""
    plt = _pyplot()
    regions = any("n_judged" in m for m in live.get("concepts", {}).values())
    size = (lambda m: m["n_judged"]) if regions else (lambda m: m["n_pos"] + m["n_neg"])
    concepts = sorted(live.get("concepts", {}).items(), key=lambda kv: -size(kv[1]))[:limit]
    if not concepts:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(concepts) + 1.2))
    names = [f"{c} ({m['tp']} TP, {m['fp']} FP, {m['fn']} FN)" if regions
             else f"{display(c, {c: m.get('name') or c})} ({m['n_pos']}+/{m['n_neg']}-)" for c, m in concepts]
    bars_of = ((-0.27, "precision", "#16a34a"), (0.0, "recall", "#f59e0b"), (0.27, "f1", "#2563eb")) if regions \
        else ((-0.2, "f1", "#2563eb"), (0.2, "roc_auc", "#f59e0b"))
    for offset, key, color in bars_of:
        vals = [m[key]["value"] or 0.0 for _, m in concepts]
        err = [[max(0.0, (m[key]["value"] or 0) - (m[key]["low"] or m[key]["value"] or 0)) for _, m in concepts],
               [max(0.0, (m[key]["high"] or m[key]["value"] or 0) - (m[key]["value"] or 0)) for _, m in concepts]]
        alphas = [0.35 if m["too_few"] else 1.0 for _, m in concepts]
        bars = ax.barh(np.arange(len(concepts)) + offset, vals, height=0.8 / len(bars_of), xerr=err, color=color,
                       label=key.replace("_", " ").upper(), capsize=2)
        for bar, a in zip(bars, alphas):
            bar.set_alpha(a)
    ax.set_yticks(np.arange(len(concepts)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.05)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title("Per concept, from feedback on this version's outputs (pale: too few labels)")
    return _png(fig)


def pr_curves(records: list[ConceptRecord], names: Mapping[str, str], limit: int = 6) -> str | None:
    curves = curves_of.pr_curves(records, limit)
    if not curves:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for c in curves:
        ax.plot(c.x, c.y, label=f"{display(c.concept, names)} (n={c.n})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7)
    ax.set_title("Precision-recall from feedback")
    return _png(fig)


def confusion(live: dict[str, Any], limit: int = 15) -> str | None:
    """Outputs with one positive concept: the concept users said (rows) against the labelled concept
    the version scored highest (columns), for the most frequent concepts."""
    plt = _pyplot()
    matrix = np.array(live.get("confusion", {}).get("matrix", []))
    if not matrix.size:
        return None
    labels = [display(c, {c: n}) for c, n in zip(live["confusion"]["labels"], live["confusion"]["names"])]
    keep = np.argsort(-(matrix.sum(axis=0) + matrix.sum(axis=1)), kind="stable")[:limit]
    matrix = matrix[np.ix_(keep, keep)]
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * len(keep), 1.0 + 0.45 * len(keep)))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), n in np.ndenumerate(matrix):
        if n:
            ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                    color="white" if n > matrix.max() / 2 else "black")
    ticks = [labels[k] for k in keep]
    ax.set_xticks(range(len(keep)), ticks, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(keep)), ticks, fontsize=7)
    ax.set_xlabel("the version's top concept")
    ax.set_ylabel("what users said")
    return _png(fig)


class ConceptExamples(NamedTuple):
    """A concept's telling images: ``right`` and ``wrong`` scored highest among those users said show
    it and do not show it (true and false positives), ``missed`` scored lowest among those they said
    show it (false negatives)."""

    concept: str
    right: list[ConceptRecord]
    wrong: list[ConceptRecord]
    missed: list[ConceptRecord]

    def records(self) -> list[tuple[ConceptRecord, str]]:
        return [(r, kind) for kind, rs in (("right", self.right), ("wrong", self.wrong), ("missed", self.missed))
                for r in rs]


EXAMPLE_COLOURS = {"right": "#15803d", "wrong": "#b91c1c", "missed": "#d97706"}


def pick_examples(records: list[ConceptRecord], threshold: float, *, concepts: int = 4,
                  per_kind: int = 3) -> list[ConceptExamples]:
    """For the ``concepts`` concepts with the most labels, ``per_kind`` images of each kind at
    ``threshold``: what the version gets right, what it confuses with the concept, what it misses."""
    by_concept: dict[str, list[ConceptRecord]] = {}
    for r in records:
        by_concept.setdefault(r.concept, []).append(r)
    out = []
    for concept, rs in sorted(by_concept.items(), key=lambda cr: (-len(cr[1]), cr[0]))[:concepts]:
        ranked = sorted(rs, key=lambda r: -r.score)
        found = [r for r in ranked if r.score >= threshold]
        missed = [r for r in reversed(ranked) if r.label and r.score < threshold]
        out.append(ConceptExamples(concept, [r for r in found if r.label][:per_kind],
                                   [r for r in found if not r.label][:per_kind], missed[:per_kind]))
    return out


def example_concepts(examples: list[ConceptExamples], images: Mapping[Hashable, Any],
                     names: Mapping[str, str]) -> str | None:
    """One row per concept: its examples framed by kind (right green, wrong red, missed amber) with
    their scores; ``images`` maps an output id to its image (an output whose image is gone is left out)."""
    rows = [(e.concept, [(r, kind) for r, kind in e.records() if r.output_id in images]) for e in examples]
    rows = [(c, shown) for c, shown in rows if shown]
    if not rows:
        return None
    cols = max(len(shown) for _, shown in rows)
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), cols, figsize=(1.7 * cols + 0.5, 2.2 * len(rows)), squeeze=False)
    fig.subplots_adjust(hspace=0.7)
    for ax in axes.ravel():
        ax.axis("off")
    for i, (concept, shown) in enumerate(rows):
        axes[i, 0].set_title(display(concept, names), loc="left", fontsize=8, x=0, y=1.12)
        for ax, (record, kind) in zip(axes[i], shown):
            image = images[record.output_id].copy()
            image.thumbnail((128, 128))
            ax.imshow(image)
            ax.axis("on")
            ax.set_xticks([])
            ax.set_yticks([])
            for side in ax.spines.values():
                side.set_edgecolor(EXAMPLE_COLOURS[kind])
                side.set_linewidth(3)
            ax.set_xlabel(f"{kind} {record.score:.2f}", fontsize=7)
    fig.suptitle("Right (green), wrong (red) and missed (amber), with the version's scores", fontsize=9)
    return _png(fig)


def calibration(records: list[ConceptRecord], bins: int = 10) -> str | None:
    """Reliability diagram: of the scores in each band, the share end users said present. A
    calibrated version's points lie on the diagonal (a score of 0.8 is right 80% of the time)."""
    curve = curves_of.calibration_points(records, bins)
    if curve is None:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], ls="--", color="#94a3b8", label="calibrated")
    ax.plot(curve.x, curve.y, "-o", color="#2563eb", label=f"this version (n={curve.n})")
    ax.set_xlabel("score the version gave")
    ax.set_ylabel("share end users said present")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Calibration from feedback")
    return _png(fig)


def example_detections(examples: list[tuple[Any, list[tuple[str, Any, float]], list[tuple[str, Any]]]]
                       ) -> str | None:
    """Judged images with what the version finds on them: a found box is green when it matches a
    drawn box of its concept (IoU >= 0.5), red when not; drawn boxes are dashed white."""
    plt = _pyplot()
    from visionloop.learning.boxes import iou

    if not examples:
        return None
    cols = min(3, len(examples))
    rows = -(-len(examples) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 3.2 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (image, found, drawn) in zip(axes.ravel(), examples):
        w, h = image.size
        ax.imshow(image)
        for _, (t, l, b, r) in drawn:
            ax.add_patch(plt.Rectangle((l * w, t * h), (r - l) * w, (b - t) * h, fill=False, ec="white", ls="--", lw=1.5))
        for concept, box, value in found:
            t, l, b, r = box
            hit = any(c == concept and iou(box, d) >= 0.5 for c, d in drawn)
            ax.add_patch(plt.Rectangle((l * w, t * h), (r - l) * w, (b - t) * h, fill=False,
                                       ec="lime" if hit else "red", lw=2))
            ax.text(l * w, t * h, f"{concept} {value:.2f}", color="black", fontsize=7,
                    bbox={"facecolor": "lime" if hit else "red", "pad": 1, "lw": 0})
    return _png(fig)


def click_positions(counts: dict[str, int]) -> str | None:
    """Clicks per position of the clicked hit: how steeply attention falls down the page."""
    plt = _pyplot()
    if not counts:
        return None
    ranks = sorted(counts, key=int)
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.bar([int(r) for r in ranks], [counts[r] for r in ranks], color="#2563eb")
    ax.set_xlabel("position of the clicked hit")
    ax.set_ylabel("clicks")
    ax.set_title("Where users click")
    return _png(fig)


def render(title: str, summary: dict[str, Any], images: list[tuple[str, str | None]], table: str = "") -> str:
    """The page: the summary, ``table`` (:func:`metrics_table`'s text) and the figures."""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in summary.items())
    if table:
        rows += f"</table><h2>Figures by concept</h2><pre>{html.escape(table)}</pre><table>"
    figures = "".join(f"<h2>{html.escape(name)}</h2><img src='data:image/png;base64,{png}'>" if png else
                      f"<h2>{html.escape(name)}</h2><p>No data yet.</p>" for name, png in images)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#111}"
            "table{border-collapse:collapse}th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}"
            "img{max-width:100%}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><table>{rows}</table>{figures}</body></html>")


def _estimate(e: dict[str, Any] | None) -> str:
    if not e or e.get("value") is None:
        return "-"
    interval = f" [{e['low']:.2f}, {e['high']:.2f}]" if e.get("low") is not None else ""
    return f"{e['value']:.2f}{interval}"


def metrics_table(live: dict[str, Any]) -> str:
    """The live figures as a plain-text table for a terminal: one line per concept, by name, with
    label counts (TP/FP/FN for a detection model), precision, recall and ROC AUC (F1 for regions)
    with intervals; a figure on too few labels is marked with ``*``."""
    concepts = live.get("concepts", {})
    regions = any("n_judged" in m for m in concepts.values())
    lines = []
    if concepts:
        header = ["concept", "TP/FP/FN" if regions else "labels +/-", "precision", "recall",
                  "F1" if regions else "ROC AUC"]
        rows = [header]
        size = (lambda m: m["n_judged"]) if regions else (lambda m: m["n_pos"] + m["n_neg"])
        for c, m in sorted(concepts.items(), key=lambda kv: (-size(kv[1]), kv[0])):
            counts = f"{m['tp']}/{m['fp']}/{m['fn']}" if regions else f"{m['n_pos']}/{m['n_neg']}"
            rows.append([display(c, {c: m.get("name") or c}) + (" *" if m.get("too_few") else ""), counts,
                         _estimate(m["precision"]), _estimate(m["recall"]),
                         _estimate(m["f1" if regions else "roc_auc"])])
        widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
        lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows]
        lines.append("")
    for key, label in (("macro_auc", "macro ROC AUC"), ("top_concept_accuracy", "top concept accuracy")):
        if key in live:
            e = live[key]
            lines.append(f"{label}: {_estimate(e)} on {e.get('n', 0)} labels" + (" *" if e.get("too_few") else ""))
    if "summary" in live:
        s = live["summary"]
        lines.append(f"all regions: precision {_estimate(s['precision'])}, recall {_estimate(s['recall'])}, "
                     f"F1 {_estimate(s['f1'])} ({s['tp']} TP, {s['fp']} FP, {s['fn']} FN)")
    shown = {"concepts", "confusion", "macro_auc", "top_concept_accuracy", "summary"}
    lines += [f"{k.replace('_', ' ')}: {v}" for k, v in live.items() if k not in shown and not isinstance(v, dict | list)]
    if concepts and any(m.get("too_few") for m in concepts.values()):
        lines.append("* fewer than 10 labels of a kind: a thin figure")
    return "\n".join(lines)
