"""bench/learning.py's accuracy curve and latency (sections 1 and 5) and malicious users (section 4)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.datasets import (  # noqa: E402
    balanced_indices,
)
from bench.learning_common import (  # noqa: E402
    GENERAL,
    MALICIOUS_SHARE,
    TRAINED,
    Api,
    ApiFailure,
    EndUser,
    Fashion,
    Sizes,
    TrainingUnavailable,
    embeddings,
    fashion_accuracy,
    gap_closed,
    log,
    oracle_probe,
    predict,
    radio_feedback,
    send_all,
    train,
    users,
)
from bench.learning_plain import compare, plain_accuracies  # noqa: E402


# -- 1 + 5: accuracy curve and latency --------------------------------------------------------------
def run_accuracy(api: Api, data: Fashion, sizes: Sizes, rng: np.random.Generator, res: dict[str, Any],
                 training: dict[str, Any]) -> None:
    res["start"] = fashion_accuracy(api, data, None)
    log(f"start (zero-shot mapping of ImageNet concepts): {res['start']:.3f}")
    Xtr = embeddings(api, list(zip(data.train_ids, data.train_png)))
    Xte = embeddings(api, list(zip(data.test_ids, data.test_png)))
    answers = np.full(len(data.train_ids), -1)  # what the end users said each image is
    res["oracle"] = oracle_probe(Xtr, Xte, data)
    log(f"oracle linear probe on {res['oracle']['train_images']} clean labels: {res['oracle']['accuracy']:.3f}")
    people = users("shopper")
    order = rng.permutation(len(data.train_ids))
    res["curve"] = [{"events": 0, "labels": 0, "accuracy": res["start"], "gap_closed": 0.0}]
    sent, served = 0, res["start"]
    for n in sizes.checkpoints:
        if n > len(order):
            log(f"N={n}: only {len(order)} training images, stopping")
            break
        chunk = order[sent:n]
        outputs = predict(api, GENERAL, [(data.train_ids[i], data.train_png[i]) for i in chunk])
        bodies, wrong = [], 0
        for i, out in zip(chunk, outputs):
            user = people[int(rng.integers(len(people)))]
            choice = user.answer(int(data.train_y[i]), rng)
            wrong += choice != data.train_y[i]
            answers[i] = choice
            bodies.append(radio_feedback(out, user, choice, f"s-{user.id}-{sent // 50}"))
        last = send_all(api, f"/v2/models/{GENERAL}/feedback", bodies)
        sent = n
        row: dict[str, Any] = {"events": n, "labels": 10 * n, "wrong_answers": wrong,
                               **plain_accuracies(Xtr[order[:n]], answers[order[:n]], Xte, data.test_y)}
        if training.get(GENERAL, {}).get("available", True):
            try:
                v = train(api, GENERAL, since=last)
            except TrainingUnavailable as exc:
                training[GENERAL] = {"available": False, "reason": str(exc)}
                log(f"N={n}: {exc}")
            else:
                row.update(v)
                if v["status"] == TRAINED:
                    row["accuracy"] = fashion_accuracy(api, data, v["version_id"])
                    row["gap_closed"] = gap_closed(row["accuracy"], res["start"], res["oracle"]["accuracy"])
                    compare(row)
                    if v["promoted"]:
                        served = row["accuracy"]
                row["served_accuracy"] = served
                log(f"N={n:>5} ({10 * n} labels): version {v['version_id']} status {v['status']} "
                    f"acc {row.get('accuracy', float('nan')):.3f} (plain LR {row['plain']:.3f}, standardised "
                    f"{row['plain_standardised']:.3f}) gap closed {row.get('gap_closed') or 0:.2f} "
                    f"promoted {v['promoted']} in {v['seconds_since_last_feedback']:.1f} s ({v['decision']})")
        res["curve"].append(row)
    stored = count_feedback(api)
    res["stored_feedback_events"] = stored
    log(f"feedback events sent {sent}, stored {stored}")


def count_feedback(api: Api) -> int | None:
    try:
        total, page = 0, 1
        while True:
            got = len(api.get("/v2/feedback", page=page, per_page=1000)["feedback"])
            total += got
            if got < 1000:
                return total
            page += 1
    except ApiFailure:
        return None


# -- 4: malicious users -----------------------------------------------------------------------------
def review_queue(api: Api, data: Fashion, images: np.ndarray, judges: int, people: list[EndUser],
                 rng: np.random.Generator) -> tuple[float, dict[str, int]]:
    """Each image predicted once and judged by ``judges`` distinct end users (in random order);
    returns when the last answer came."""
    outputs = predict(api, GENERAL, [(data.train_ids[i], data.train_png[i]) for i in images])
    events = []
    for i, out in zip(images, outputs):
        for u in rng.choice(len(people), judges, replace=False):
            events.append((int(i), out, people[int(u)]))
    order = rng.permutation(len(events))
    bodies, tally = [], {"events": len(events), "wrong": 0, "by_malicious": 0}
    for k in order:
        i, out, user = events[k]
        choice = user.answer(int(data.train_y[i]), rng)
        tally["wrong"] += int(choice != data.train_y[i])
        tally["by_malicious"] += int(user.malicious)
        bodies.append(radio_feedback(out, user, choice, f"s-{user.id}"))
    return send_all(api, f"/v2/models/{GENERAL}/feedback", bodies), tally


# (result key, app, judges per image, share of malicious end users, reliability runs)
MALICIOUS_RUNS = [
    ("honest_only", "honest3", 3, 0.0, ("reliability",)),
    ("malicious_20pct", "malicious", 3, MALICIOUS_SHARE, ("no_reliability", "reliability")),
    ("malicious_20pct_2_judges", "malicious2", 2, MALICIOUS_SHARE, ("no_reliability", "reliability")),
]


def run_malicious(apis: dict[str, Api], data: Fashion, sizes: Sizes, seed: int, res: dict[str, Any],
                  training: dict[str, Any]) -> None:
    per_class = min(sizes.malicious_images // 10, sizes.pool_per_class)
    images = balanced_indices(data.train_y, per_class, np.random.default_rng(seed))
    res["images"], res["events"] = len(images), 3 * len(images)
    for name, app, judges, share, runs in MALICIOUS_RUNS:
        api = apis[app]
        chosen = images
        last, tally = review_queue(api, data, chosen, judges, users("reviewer", share),
                                   np.random.default_rng(seed + 1))
        res[name] = {"feedback": tally, "images": len(chosen), "judges_per_image": judges,
                     "malicious_share_of_users": share}
        log(f"{name}: {len(chosen)} images x {judges} judges = {tally['events']} events, {tally['wrong']} wrong "
            f"answers ({tally['by_malicious']} by malicious users)")
        for label in runs:
            if not training.get(GENERAL, {}).get("available", True):
                continue
            try:
                v = train(api, GENERAL, since=last, options={"reliability": False} if label == "no_reliability"
                          else None)
            except TrainingUnavailable as exc:
                training[GENERAL] = {"available": False, "reason": str(exc)}
                continue
            except ApiFailure as exc:
                res[name][label] = {"error": str(exc)}
                log(f"{name} {label}: {exc}")
                continue
            if v["status"] == TRAINED:
                v["accuracy"] = fashion_accuracy(api, data, v["version_id"])
            res[name][label] = v
            if v["status"] != TRAINED:
                log(f"{name} {label}: version {v['version_id']} not trained: {v['status']} {v['status_description']}")
                continue
            log(f"{name} {label}: acc {v.get('accuracy', float('nan')):.3f} (version {v['version_id']}, "
                f"{(v.get('trained_on') or {}).get('down_weighted_users')} end users down-weighted; "
                f"promoted {v['promoted']}: {v['decision']})")
            last = time.monotonic()
