"""Cheap levers on accuracy after 1,000 feedback events, offline on cached Fashion-MNIST embeddings.

    python bench/learning_gap.py              # seeds 0-2, a few minutes once the embeddings are cached

``bench/learning.py``'s accuracy task without the server: 1,000 radio answers on distinct images of
a 3,000-image balanced pool (end users wrong 10% of the time, each event ten statements), resolved
as the server resolves them (:func:`visionloop.learning.labels.aggregate`, :func:`label_matrix`),
then :class:`ConceptHeads` with one setting changed per variant; held-out top-1 among the ten on
1,000 test images. The images go through the product's backbone in process; the features are
cached in ``bench/out/fewshot_fashion_SEED.npz``. The version's fit does not depend on the number of
cross-validation folds (they only decide promotion and the base model's share, and these concepts
are new to the base model), so that lever has no variant here.
"""

from __future__ import annotations

import argparse
import io
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT  # noqa: E402
from bench.datasets import balanced_indices, fashion_mnist, fashion_png  # noqa: E402

EVENTS = 1000
ERROR = 0.10
N_USERS = 50
CONCEPTS = [f"class-{k}" for k in range(10)]
VARIANTS: dict[str, dict[str, Any]] = {
    "visionloop": {},
    "a wider C grid (0.003-10, 8 values)": {"Cs": (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)},
    "5 folds to choose C (3)": {"cv_folds": 5},
    "prototype evidence 50 (100)": {"prototype_evidence": 50.0},
}


def embedded(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train features, labels, test features, labels) of the seed's pool, as ``bench/learning.py`` draws it."""
    path = ROOT / "bench" / "out" / f"fewshot_fashion_{seed}.npz"
    if path.exists():
        with np.load(path) as d:
            return d["Xtr"], d["ytr"], d["Xte"], d["yte"]
    from PIL import Image

    from visionloop.inference.backbone import Backbone

    rng = np.random.default_rng(seed)
    (xtr, ytr), (xte, yte) = fashion_mnist("train"), fashion_mnist("test")
    itr, ite = balanced_indices(ytr, 300, rng), balanced_indices(yte, 100, rng)
    backbone = Backbone(threads=1)

    def features(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return np.concatenate([backbone.forward([Image.open(io.BytesIO(fashion_png(255 - x[i])))
                                                 for i in idx[s:s + 64]]).features for s in range(0, len(idx), 64)])

    arrays = {"Xtr": features(xtr, itr), "ytr": ytr[itr], "Xte": features(xte, ite), "yte": yte[ite]}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return arrays["Xtr"], arrays["ytr"], arrays["Xte"], arrays["yte"]


def labelled(seed: int, y: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
    """(rows, Y, W, confidence) from one noisy radio answer on each of ``EVENTS`` images."""
    from visionloop.learning.heads import label_matrix
    from visionloop.learning.labels import Vote, aggregate

    rng = np.random.default_rng(seed + 7)
    votes = []
    for i in rng.permutation(len(y))[:EVENTS]:
        user, truth = f"shopper-{int(rng.integers(N_USERS)):02d}", int(y[i])
        said = truth if rng.random() >= ERROR else int(rng.choice([k for k in range(10) if k != truth]))
        votes += [Vote((int(i), c), user, said == k) for k, c in enumerate(CONCEPTS)]
    labels = list(aggregate(votes).labels.values())
    rows = sorted({lab.item[0] for lab in labels})
    Y, W, _ = label_matrix(labels, rows, CONCEPTS)
    confidence = {lab.item: lab.confidence for lab in labels}
    C = np.array([[confidence.get((r, c), 0.0) for c in CONCEPTS] for r in rows]) * (W > 0)
    return rows, Y, W, C


def main() -> None:
    from visionloop.learning.heads import ConceptHeads
    from visionloop.services.training.data import unit_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    table: dict[str, list[float]] = {}
    for seed in range(args.seeds):
        Xtr, ytr, Xte, yte = embedded(seed)
        rows, Y, W, confidence = labelled(seed, ytr)
        runs = [(name, params, W) for name, params in VARIANTS.items()]
        runs.append(("labels weighed by their resolved confidence (1)", {}, confidence))
        for name, params, weights in runs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                heads = ConceptHeads(**params).fit(unit_rows(Xtr[rows]), Y, sample_weight=weights, concepts=CONCEPTS)
            accuracy = float((heads.predict_proba(unit_rows(Xte)).argmax(axis=1) == yte).mean())
            table.setdefault(name, []).append(accuracy)
            print(f"seed {seed}: {name}: {accuracy:.3f}", flush=True)
    print(f"held-out top-1 after {EVENTS} events, mean of {args.seeds} seeds")
    for name, values in table.items():
        print(f"| {name} | {np.mean(values):.3f} | {' / '.join(f'{v:.3f}' for v in values)} |")


if __name__ == "__main__":
    main()
