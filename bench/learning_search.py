"""bench/learning.py's section 3: search, before and after clicks."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import search_memory  # noqa: E402
from bench.datasets import (  # noqa: E402
    EMOJI_TO_FASHION,
    Emoji,
    balanced_indices,
    emoji,
    fashion_mnist,
    fashion_png,
)
from bench.learning_common import (  # noqa: E402
    BATCH,
    CLASS_IDS,
    EMBED,
    HONEST_ERROR,
    TRAINED,
    Api,
    Sizes,
    TrainingUnavailable,
    b64,
    log,
    ndcg_at,
    send_all,
    train,
    users,
)


# -- 3: search ----------------------------------------------------------------------------------------
def run_search(api: Api, sizes: Sizes, rng: np.random.Generator, res: dict[str, Any],
               training: dict[str, Any]) -> None:
    xte, yte = fashion_mnist("test")
    # Fashion images from the second half of the test split (the accuracy section samples all of
    # it, but in another app): a corpus, and other images of the same classes as queries.
    wanted = sizes.search_fashion_per_class + sizes.search_queries_per_class
    half = 5000 + balanced_indices(yte[5000:], wanted, rng)
    by_class = {c: [int(i) for i in half if yte[i] == c] for c in range(10)}
    corpus_f = [i for c in range(10) for i in by_class[c][:sizes.search_fashion_per_class]]
    query_f = [i for c in range(10) for i in by_class[c][sizes.search_fashion_per_class:]]
    pool = emoji()
    clothing = [e for e in pool if e.short_name in EMOJI_TO_FASHION]
    by_sub: dict[str, list[Emoji]] = {}
    for e in pool:
        if e.short_name not in EMOJI_TO_FASHION and e.subcategory != "country-flag":
            by_sub.setdefault(e.subcategory, []).append(e)
    subs = sorted((s for s, es in by_sub.items() if len(es) >= 12), key=lambda s: (-len(by_sub[s]), s))
    subs = subs[:sizes.search_emoji_subcategories]
    corpus_e: list[Emoji] = []
    query_e: list[Emoji] = []
    for s in subs:
        es = [by_sub[s][int(i)] for i in rng.permutation(len(by_sub[s]))]
        n_corpus = min(sizes.search_emoji_per_subcategory, round(0.7 * len(es)))
        corpus_e += es[:n_corpus]
        query_e += es[n_corpus:n_corpus + max(1, round(n_corpus * 0.3 / 0.7))]
    f_label = lambda c: f"fashion/{CLASS_IDS[c]}"  # noqa: E731
    corpus: list[tuple[str, bytes, str]] = [(f"fm-{i}", fashion_png(255 - xte[i]), f_label(int(yte[i])))
                                            for i in corpus_f]
    corpus += [(f"emoji-{e.path.stem}", e.png(), f"emoji/{e.subcategory}") for e in corpus_e]
    counts: dict[str, int] = {}
    for _, _, lab in corpus:
        counts[lab] = counts.get(lab, 0) + 1
    t0 = time.monotonic()
    for lo in range(0, len(corpus), BATCH):
        api.post("/v2/inputs", {"inputs": [{"id": i, "data": {"image": {"base64": b64(png)},
                                                                "metadata": {"label": lab}}}
                                            for i, png, lab in corpus[lo:lo + BATCH]]})
    res["corpus"] = {"inputs": len(corpus), "fashion": len(corpus_f), "emoji": len(corpus_e),
                     "emoji_subcategories": len(subs), "add_seconds": round(time.monotonic() - t0, 1)}
    log(f"corpus: {res['corpus']}")

    # Queries are images outside the corpus, sent as base64 ("search by photo").
    Query = tuple[str, bytes, str, str]  # name, png, label, style
    queries: list[Query] = [(f"fm-{i}", fashion_png(255 - xte[i]), f_label(int(yte[i])), "fashion")
                            for i in query_f]
    queries += [(f"emoji-{e.path.stem}", e.png(), f"emoji/{e.subcategory}", "emoji") for e in query_e]
    held: list[Query] = []
    clicked: list[Query] = []
    for q in queries:
        (held if rng.random() < sizes.search_heldout_fraction else clicked).append(q)
    clicked = [clicked[int(i)] for i in sorted(rng.choice(len(clicked), min(len(clicked), sizes.search_clicked_queries),
                                                          replace=False))]
    # Clothing emoji look for Fashion-MNIST products: search across styles (held out only).
    held += [(f"emoji-{e.path.stem}", e.png(), f_label(EMOJI_TO_FASHION[e.short_name]), "cross-style")
             for e in clothing]
    res["queries"] = {"held_out": len(held), "clicked": len(clicked),
                      "held_out_by_style": {st: sum(q[3] == st for q in held) for st in ("fashion", "emoji",
                                                                                          "cross-style")}}
    log(f"queries: {res['queries']}")
    payload = {q[0]: b64(q[1]) for q in queries + held}

    def search(q: Query) -> tuple[str, list[tuple[str, str]]]:
        got = api.post("/v2/searches", {"query": {"ands": [{"output": {"input": {"data": {"image": {
            "base64": payload[q[0]]}}}}}]}, "pagination": {"page": 1, "per_page": 10}})
        return got["id"], [(h["input"]["id"], h["input"]["data"]["metadata"].get("label")) for h in got["hits"]]

    def evaluate(qs: Sequence[Query]) -> dict[str, Any]:
        per: dict[str, list[float]] = {}
        for q in qs:
            _, hits = search(q)
            value = ndcg_at([lab == q[2] for _, lab in hits], counts[q[2]])
            per.setdefault(q[3], []).append(value)
            per.setdefault("all", []).append(value)
        return {k: {"ndcg10": float(np.mean(v)), "queries": len(v)} for k, v in per.items()}

    res["before"] = evaluate(held)
    log(f"NDCG@10 before clicks: {json.dumps({k: round(v['ndcg10'], 4) for k, v in res['before'].items()})}")
    # The same figure on a sample of the clicked queries: what the clicks could teach in-sample.
    clicked_sample = [clicked[int(i)] for i in rng.choice(len(clicked), min(len(held), len(clicked)), replace=False)]
    res["before_clicked_queries"] = evaluate(clicked_sample)
    base_version = api.get(f"/v2/models/{EMBED}")["model"]["model_version"]["id"]

    clicks, searches, wrong, t0 = 0, 0, 0, time.monotonic()
    people = users("searcher")
    bodies: list[dict[str, Any]] = []
    last = time.monotonic()
    while clicks < sizes.clicks:
        q = clicked[int(rng.integers(len(clicked)))]
        user = people[int(rng.integers(len(people)))]
        sid, hits = search(q)
        searches += 1
        for rank, (hit, lab) in enumerate(hits, start=1):
            if rng.random() >= 1.0 / rank or clicks >= sizes.clicks:  # not looked at (position bias)
                continue
            relevant = lab == q[2]
            if rng.random() < (1 - HONEST_ERROR if relevant else HONEST_ERROR):
                wrong += not relevant
                clicks += 1
                bodies.append({"input": {"id": hit, "feedback_info": {
                    "event_type": "search_click", "search_id": sid, "end_user_id": user.id,
                    "session_id": f"s-{user.id}-{searches}"}}})
        if len(bodies) >= 200 or clicks >= sizes.clicks:
            last = send_all(api, "/v2/searches/feedback", bodies)
            bodies = []
    res["clicks"] = {"clicks": clicks, "searches": searches, "irrelevant_clicks": wrong,
                     "seconds": round(time.monotonic() - t0, 1), "examination": "1/rank (PBM)"}
    log(f"clicks: {res['clicks']}")
    # The click memory needs no training: what the app serves right after the clicks.
    res["after_memory"] = evaluate(held)
    res["after_memory_clicked_queries"] = evaluate(clicked_sample)
    res["memory_gains"] = search_memory.gains(res)

    def probe() -> tuple[str, list[str]]:
        sid, hits = search(clicked[0])
        return sid, [i for i, _ in hits]

    def click(sid: str, hit: str) -> float:
        return send_all(api, "/v2/searches/feedback", [{"input": {"id": hit, "feedback_info": {
            "event_type": "search_click", "search_id": sid, "end_user_id": "latency-probe"}}}])

    res["click_to_show"] = search_memory.click_to_show(probe, click)
    log(f"click memory: {json.dumps(res['memory_gains'])}; a click shows in {json.dumps(res['click_to_show'])}")
    if training.get(EMBED, {}).get("available", True):
        try:
            v = train(api, EMBED, since=last)
        except TrainingUnavailable as exc:
            training[EMBED] = {"available": False, "reason": str(exc)}
            log(f"not reached: {exc}")
            return
        res["version"] = v
        log(f"embedding model version {v['version_id']}: status {v['status']} promoted {v['promoted']} "
            f"({v['decision']})")
        # What the app serves now (the new version only if it was promoted).
        res["after"] = evaluate(held)
        res["after_clicked_queries"] = evaluate(clicked_sample)
        b, a = res["before"]["all"]["ndcg10"], res["after"]["all"]["ndcg10"]
        res["relative_gain"] = (a - b) / b if b else None
        log(f"NDCG@10 after clicks: {json.dumps({k: round(v['ndcg10'], 4) for k, v in res['after'].items()})} "
            f"relative gain {res['relative_gain']:+.1%}")
        if not v["promoted"] and v["status"] == TRAINED:
            # Was refusing it right? Activate it by hand, measure, and roll back.
            api.post(f"/v2/models/{EMBED}/versions/{v['version_id']}/activate", {})
            try:
                res["after_if_activated"] = evaluate(held)
                res["after_if_activated_clicked_queries"] = evaluate(clicked_sample)
            finally:
                api.post(f"/v2/models/{EMBED}/versions/{base_version}/activate", {})
            a = res["after_if_activated"]["all"]["ndcg10"]
            res["relative_gain_if_activated"] = (a - b) / b if b else None
            log(f"NDCG@10 with the refused version activated by hand: "
                f"{json.dumps({k: round(x['ndcg10'], 4) for k, x in res['after_if_activated'].items()})} "
                f"relative gain {res['relative_gain_if_activated']:+.1%}")
