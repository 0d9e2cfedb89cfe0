"""bench/learning.py's section 2: concepts introduced by feedback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets import (  # noqa: E402
    Emoji,
    emoji,
)
from bench.learning_common import (  # noqa: E402
    GENERAL,
    HONEST_ERROR,
    NEW_CONCEPT_SUBCATEGORIES,
    TRAINED,
    Api,
    Sizes,
    TrainingUnavailable,
    log,
    predict,
    scores,
    send_all,
    train,
    users,
)


# -- 2: concepts introduced by feedback ------------------------------------------------------------
def run_concepts(apis: dict[str, Api], sizes: Sizes, seed: int, res: dict[str, Any],
                 training: dict[str, Any]) -> None:
    """Replicates (different positives, negatives and held-out splits), each run twice in its own
    apps: with honest users (10% wrong) and with careful ones (no errors), to tell label noise
    from sample size. The rows report the mean over replicates."""
    pool = emoji()
    subcats = NEW_CONCEPT_SUBCATEGORIES[:sizes.concepts]
    concept_ids = ["emoji-" + s.replace(" & ", "-and-").replace(" ", "-") for s in subcats]
    res["concepts"] = dict(zip(concept_ids, subcats))
    res["replicates"] = []
    for rep in range(sizes.concept_replicates):
        rng = np.random.default_rng(seed + 100 * rep)
        kmax = max(sizes.concept_ks)
        order = rng.permutation(len(pool))
        train_pos: dict[str, list[int]] = {}
        held_pos: dict[str, list[int]] = {}
        for s, cid in zip(subcats, concept_ids):
            members = [int(i) for i in order if pool[i].subcategory == s]
            train_pos[cid], held_pos[cid] = members[:kmax], members[kmax:]
        others = [int(i) for i in order if pool[i].subcategory not in subcats]
        negatives_needed = 2 * kmax * len(subcats)
        train_neg_pool = others[:negatives_needed]
        held_neg = others[negatives_needed:negatives_needed + sizes.concept_negatives]
        train_neg = {cid: train_neg_pool[j * 2 * kmax:(j + 1) * 2 * kmax] for j, cid in enumerate(concept_ids)}
        held = sorted({i for cid in concept_ids for i in held_pos[cid]} | set(held_neg))
        truth = {cid: np.array([pool[i].subcategory == s for i in held]) for s, cid in zip(subcats, concept_ids)}
        out: dict[str, Any] = {"held_out_images": len(held),
                               "held_out_positives": {cid: len(held_pos[cid]) for cid in concept_ids}}
        res["replicates"].append(out)
        for key, app, error in (("rows", "concepts", HONEST_ERROR), ("rows_careful_users", "concepts-clean", 0.0)):
            log(f"-- replicate {rep + 1}/{sizes.concept_replicates}: end users wrong {error:.0%} of the time")
            _concept_stages(apis[f"{app}-{rep}"], sizes, np.random.default_rng(seed + 100 * rep + 1), error, pool,
                            concept_ids, train_pos, train_neg, held, truth, out.setdefault(key, []), training)
    for key in ("rows", "rows_careful_users"):
        res[key] = []
        for k in sorted(sizes.concept_ks):
            reps = [r for rep in res["replicates"] for r in rep.get(key, []) if r["positives"] == k and r.get("auc")]
            if not reps:
                continue
            res[key].append({
                "positives": k, "negatives": 2 * k, "replicates": len(reps),
                "mean_auc": float(np.mean([r["mean_auc"] for r in reps])),
                "mean_auc_per_replicate": [r["mean_auc"] for r in reps],
                "auc": {cid: float(np.mean([0.5 if r["auc"][cid] is None else r["auc"][cid] for r in reps]))
                        for cid in concept_ids},
                "concepts_learned": sum(r["concepts_learned"] for r in reps),
                "concepts_total": len(concept_ids) * len(reps),
                "seconds_since_last_feedback": float(np.mean([r["seconds_since_last_feedback"] for r in reps]))})
        for row in res[key]:
            log(f"{key}: k={row['positives']:>2}: mean AUC {row['mean_auc']:.3f} over {row['replicates']} replicates "
                f"({row['concepts_learned']}/{row['concepts_total']} concept heads learned)")


def _concept_stages(api: Api, sizes: Sizes, rng: np.random.Generator, error: float, pool: list[Emoji],
                    concept_ids: list[str], train_pos: dict[str, list[int]], train_neg: dict[str, list[int]],
                    held: list[int], truth: dict[str, np.ndarray], rows: list[dict[str, Any]],
                    training: dict[str, Any]) -> None:
    from sklearn.metrics import roc_auc_score

    people = users("viewer")
    done = 0
    for k in sorted(sizes.concept_ks):
        statements: list[tuple[int, str, bool]] = []
        for cid in concept_ids:
            statements += [(i, cid, True) for i in train_pos[cid][done:k]]
            statements += [(i, cid, False) for i in train_neg[cid][2 * done:2 * k]]
        done = k
        imgs = sorted({i for i, _, _ in statements})
        outs = dict(zip(imgs, predict(api, GENERAL, [(f"emoji-{pool[i].path.stem}", pool[i].png()) for i in imgs])))
        bodies, wrong = [], 0
        for i, cid, present in statements:
            user = people[int(rng.integers(len(people)))]
            said = user.says(present, rng, error)
            wrong += said != present
            bodies.append({"input": {"id": outs[i]["input"]["id"], "data": {"concepts": [{"id": cid, "value": said}]},
                                     "feedback_info": {"event_type": "annotation", "output_id": outs[i]["id"],
                                                       "end_user_id": user.id, "session_id": f"s-{user.id}"}}})
        last = send_all(api, f"/v2/models/{GENERAL}/feedback", bodies)
        row: dict[str, Any] = {"positives": k, "negatives": 2 * k, "wrong_answers_this_stage": wrong,
                               "user_error_rate": error}
        if training.get(GENERAL, {}).get("available", True):
            try:
                v = train(api, GENERAL, since=last)
            except TrainingUnavailable as exc:
                training[GENERAL] = {"available": False, "reason": str(exc)}
                rows.append(row)
                continue
            row.update(v)
            aucs: dict[str, float | None] = {cid: None for cid in concept_ids}  # a version that did not train
            if v["status"] == TRAINED:                                          # learned no concept
                outs_h = predict(api, GENERAL, [(f"emoji-{pool[i].path.stem}", pool[i].png()) for i in held],
                                 select=concept_ids, version=v["version_id"])
                S = scores(outs_h, concept_ids)
                for j, cid in enumerate(concept_ids):
                    col = S[:, j]
                    aucs[cid] = None if np.isnan(col).all() else float(roc_auc_score(truth[cid], np.nan_to_num(col)))
            row["auc"] = aucs
            # A concept the version did not learn (too few labels) ranks nothing: it counts as
            # chance (0.5) in the mean.
            row["concepts_learned"] = sum(a is not None for a in aucs.values())
            row["mean_auc"] = float(np.mean([0.5 if a is None else a for a in aucs.values()]))
            log(f"k={k:>2} positives: mean AUC {row['mean_auc']:.3f}, "
                f"{row['concepts_learned']}/{len(aucs)} learned "
                f"({', '.join(f'{c}: {a:.3f}' if a is not None else f'{c}: -' for c, a in aucs.items())})")
        rows.append(row)
