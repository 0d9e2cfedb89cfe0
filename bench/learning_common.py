"""What bench/learning.py's sections share: sizes, the HTTP client, training, simulated end users
and the Fashion-MNIST pool (the sections are described in bench/learning.py's docstring)."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import dataclasses
import math
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT  # noqa: E402
from bench.datasets import (  # noqa: E402
    FASHION_CLASSES,
    MissingData,
    balanced_indices,
    fashion_mnist,
    fashion_png,
)

GENERAL = "aaa03c23b3724a16a56b629203edc62c"
EMBED = "bbb5f41425b8468d9b7a554ff10f8581"
OUT = ROOT / "bench" / "out"
BATCH = 64                      # images per predict / add call (the server takes up to 128)
FEEDBACK_WORKERS = 4            # feedback requests in flight
HONEST_ERROR = 0.10
MALICIOUS_SHARE = 0.20
N_USERS = 50
TRAINED, TRAINING, QUEUED = 21100, 21101, 21103
CLASS_IDS = [cid for cid, _ in FASHION_CLASSES]
CLASS_NAMES = [name for _, name in FASHION_CLASSES]

# The starting model: each class scores the summed probability of the ImageNet classes whose
# names say the same thing (picked by name from the general model's vocabulary, not tuned).
ZERO_SHOT: dict[int, list[tuple[str, str]]] = {
    0: [("n03595614", "T-shirt")],
    1: [("n03594734", "jeans")],
    2: [("n04370456", "sweatshirt"), ("n02963159", "cardigan")],
    3: [("n03450230", "gown"), ("n03534580", "hoop skirt"), ("n03866082", "overskirt"), ("n03770439", "miniskirt")],
    4: [("n04479046", "trench coat"), ("n03404251", "fur coat"), ("n03630383", "lab coat")],
    5: [("n04133789", "sandal")],
    6: [("n04591157", "Windsor tie"), ("n02883205", "bow tie"), ("n04350905", "suit")],
    7: [("n04120489", "sneaker")],
    8: [("n04026417", "purse"), ("n02769748", "backpack"), ("n03709823", "messenger bag"),
        ("n03958227", "plastic bag")],
    9: [("n03124043", "cowboy boot")],
}
# A malicious user's answer: the class's look-alike (a fixed pairing, the same for all of them).
FLIP = {0: 6, 6: 0, 2: 4, 4: 2, 5: 7, 7: 5, 1: 3, 3: 1, 8: 9, 9: 8}
NEW_CONCEPT_SUBCATEGORIES = ["animal-mammal", "transport-ground", "clothing", "sky & weather", "food-prepared"]


@dataclasses.dataclass(frozen=True)
class Sizes:
    pool_per_class: int          # training images per class (accuracy; the oracle's training set)
    test_per_class: int          # held-out images per class
    checkpoints: tuple[int, ...]  # feedback events at which a version is trained
    malicious_images: int        # images in the malicious experiment (3 judgments each)
    concepts: int                # new emoji concepts
    concept_replicates: int      # independent draws of the examples (each in its own apps)
    concept_ks: tuple[int, ...]
    concept_negatives: int       # held-out negatives for concept AUC
    search_fashion_per_class: int  # Fashion-MNIST images per class in the search corpus
    search_queries_per_class: int  # other Fashion-MNIST images per class used as queries
    search_emoji_subcategories: int  # the largest emoji subcategories used (of those with >= 12)
    search_emoji_per_subcategory: int  # at most this many of each in the corpus (~30% more: queries)
    search_heldout_fraction: float
    clicks: int
    search_clicked_queries: int  # the clicked queries are this many, each asked several times


FULL = Sizes(300, 100, (100, 300, 1000, 3000), 1000, 5, 3, (5, 10, 20), 300, 100, 50, 40, 14, 0.2, 1500, 150)
QUICK = Sizes(40, 20, (100, 300), 150, 3, 1, (5, 10, 20), 100, 20, 15, 10, 8, 0.25, 300, 40)


# -- HTTP ---------------------------------------------------------------------------------------
class ApiFailure(RuntimeError):
    def __init__(self, method: str, path: str, http: int, body: Any) -> None:
        self.http, self.body = http, body
        status = body.get("status", {}) if isinstance(body, dict) else {}
        super().__init__(f"{method} {path}: HTTP {http} {status.get('code')} {status.get('description')} "
                         f"{status.get('details', '')}".strip())


class Api:
    """One app's key against the server; every call checks HTTP 200 and status 10000."""

    def __init__(self, base: str, key: str) -> None:
        self.client = httpx.Client(base_url=base, headers={"Authorization": f"Key {key}"}, timeout=900,
                                   limits=httpx.Limits(max_connections=16))

    def call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.client.request(method, path, json=body, params=params)
        try:
            data = r.json()
        except ValueError:
            data = {"status": {"description": r.text[:200]}}
        if r.status_code != 200 or data.get("status", {}).get("code") != 10000:
            raise ApiFailure(method, path, r.status_code, data)
        return data

    def post(self, path: str, body: Any) -> dict[str, Any]:
        return self.call("POST", path, body)

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        return self.call("GET", path, params=params or None)

    def close(self) -> None:
        self.client.close()


def b64(png: bytes) -> str:
    return base64.b64encode(png).decode()


def predict(api: Api, model: str, images: Sequence[tuple[str, bytes]], *, select: Sequence[str] = (),
            version: str | None = None) -> list[dict[str, Any]]:
    """Outputs for (input id, png) pairs, in order, in batches."""
    path = f"/v2/models/{model}/versions/{version}/outputs" if version else f"/v2/models/{model}/outputs"
    out: list[dict[str, Any]] = []
    for lo in range(0, len(images), BATCH):
        body: dict[str, Any] = {"inputs": [{"id": i, "data": {"image": {"base64": b64(png)}}}
                                           for i, png in images[lo:lo + BATCH]]}
        if select:
            body["model"] = {"output_info": {"output_config": {"select_concepts": [{"id": c} for c in select]}}}
        out += api.post(path, body)["outputs"]
    return out


def scores(outputs: Sequence[dict[str, Any]], concepts: Sequence[str]) -> np.ndarray:
    """(n, len(concepts)) concept values; NaN where the output does not carry the concept."""
    col = {c: j for j, c in enumerate(concepts)}
    S = np.full((len(outputs), len(concepts)), np.nan)
    for i, o in enumerate(outputs):
        for c in o.get("data", {}).get("concepts", []):
            if c["id"] in col:
                S[i, col[c["id"]]] = float(c["value"])
    return S


def embeddings(api: Api, images: Sequence[tuple[str, bytes]]) -> np.ndarray:
    outs = predict(api, EMBED, images)
    return np.array([o["data"]["embeddings"][0]["vector"] for o in outs], dtype=np.float32)


def send_all(api: Api, path: str, bodies: Sequence[dict[str, Any]]) -> float:
    """POST every body (a few in flight); returns the monotonic time the last answer arrived."""
    with cf.ThreadPoolExecutor(FEEDBACK_WORKERS) as pool:
        for f in [pool.submit(api.post, path, b) for b in bodies]:
            f.result()
    return time.monotonic()


# -- training -----------------------------------------------------------------------------------
class TrainingUnavailable(RuntimeError):
    pass


def train(api: Api, model: str, since: float | None = None, options: dict[str, Any] | None = None,
          timeout: float = 900) -> dict[str, Any]:
    """Ask for a new version and poll until it is trained (or failed) and its promotion decided.

    ``since`` (a monotonic time, e.g. the last feedback's answer) is where the latency starts.
    """
    start = time.monotonic() if since is None else since
    asked = time.monotonic()
    body: dict[str, Any] = {"visionloop": options} if options else {}
    try:
        answer = api.post(f"/v2/models/{model}/versions", body)
    except ApiFailure as exc:
        code = exc.body.get("status", {}).get("code") if isinstance(exc.body, dict) else None
        if exc.http == 405 or (exc.http == 404 and code != 21200) or code == 21202:
            raise TrainingUnavailable(f"POST /v2/models/{model}/versions: {exc}") from exc
        raise
    version = answer.get("model", {}).get("model_version") or answer.get("model_version") or {}
    vid = version["id"]
    deadline = time.monotonic() + timeout
    while True:
        code = version.get("status", {}).get("code")
        if code not in (QUEUED, TRAINING):  # trained (promotion decided with it) or failed
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"version {vid} still {code} after {timeout:.0f} s")
        time.sleep(0.05)
        version = api.get(f"/v2/models/{model}/versions/{vid}")["model_version"]
    done = time.monotonic()
    info = version.get("visionloop", {})
    return {"version_id": vid, "status": version["status"].get("code"),
            "status_description": " ".join(filter(None, (version["status"].get("description"),
                                                          version["status"].get("details")))),
            "trained_on": info.get("trained_on"), "skipped": info.get("skipped"),
            "promoted": bool(info.get("promoted")), "decision": info.get("decision"), "kind": info.get("kind"),
            "metrics": version.get("metrics"), "seconds_since_last_feedback": done - start,
            "seconds_training_call": done - asked}


# -- simulated end users -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class EndUser:
    id: str
    malicious: bool = False

    def answer(self, truth: int, rng: np.random.Generator) -> int:
        if self.malicious:
            return FLIP[truth]
        if rng.random() < HONEST_ERROR:
            return int(rng.choice([c for c in range(10) if c != truth]))
        return truth

    def says(self, present: bool, rng: np.random.Generator, error: float = HONEST_ERROR) -> bool:
        """A yes/no answer about one concept (honest: wrong ``error`` of the time)."""
        wrong = self.malicious or rng.random() < error
        return present != wrong


def users(prefix: str, malicious_share: float = 0.0) -> list[EndUser]:
    n_bad = round(N_USERS * malicious_share)
    return [EndUser(f"{prefix}-{i:02d}", malicious=i < n_bad) for i in range(N_USERS)]


def radio_feedback(output: dict[str, Any], user: EndUser, choice: int, session: str) -> dict[str, Any]:
    """One end user's pick among the ten classes: the choice true, the others false."""
    return {"input": {"id": output["input"]["id"], "data": {"concepts": [
        {"id": cid, "value": c == choice} for c, cid in enumerate(CLASS_IDS)]},
        "feedback_info": {"event_type": "annotation", "output_id": output["id"], "end_user_id": user.id,
                          "session_id": session}}}


# -- helpers ------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(msg, flush=True)


def top1(S: np.ndarray, y: np.ndarray) -> float:
    filled = np.where(np.isnan(S), -np.inf, S)
    return float((filled.argmax(axis=1) == y).mean())


def gap_closed(acc: float, start: float, oracle: float) -> float | None:
    return None if oracle <= start else (acc - start) / (oracle - start)


def ndcg_at(relevant: Sequence[bool], n_relevant: int, k: int = 10) -> float:
    dcg = sum(1.0 / math.log2(r + 2) for r, rel in enumerate(relevant[:k]) if rel)
    ideal = sum(1.0 / math.log2(r + 2) for r in range(min(k, n_relevant)))
    return dcg / ideal if ideal else 0.0


class Section:
    """Runs one section, keeping its figures, its error (if any) and its wall time."""

    def __init__(self, results: dict[str, Any], name: str) -> None:
        self.results, self.name = results, name

    def __enter__(self) -> dict[str, Any]:
        self.t0 = time.monotonic()
        log(f"\n== {self.name} ==")
        self.results[self.name] = self.data = {}
        return self.data

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> bool:
        self.data["wall_seconds"] = round(time.monotonic() - self.t0, 1)
        if exc is None:
            return False
        if isinstance(exc, (KeyboardInterrupt, MissingData)):
            return False
        self.data["error"] = f"{type(exc).__name__}: {exc}"
        log(f"!! {self.name} failed: {self.data['error']}")
        traceback.print_exception(kind, exc, tb, limit=4)
        return True


# -- the fashion pool ---------------------------------------------------------------------------
@dataclasses.dataclass
class Fashion:
    train_ids: list[str]
    train_png: list[bytes]
    train_y: np.ndarray
    test_ids: list[str]
    test_png: list[bytes]
    test_y: np.ndarray


def load_fashion(sizes: Sizes, rng: np.random.Generator) -> Fashion:
    xtr, ytr = fashion_mnist("train")
    xte, yte = fashion_mnist("test")
    itr = balanced_indices(ytr, sizes.pool_per_class, rng)
    ite = balanced_indices(yte, sizes.test_per_class, rng)
    return Fashion([f"fm-train-{i}" for i in itr], [fashion_png(255 - xtr[i]) for i in itr], ytr[itr],
                   [f"fm-test-{i}" for i in ite], [fashion_png(255 - xte[i]) for i in ite], yte[ite])


def fashion_accuracy(api: Api, data: Fashion, version: str | None) -> float:
    """Top-1 among the ten classes on the held-out images: a trained version by id, else zero-shot."""
    images = list(zip(data.test_ids, data.test_png))
    if version is None:
        ids = [cid for c in range(10) for cid, _ in ZERO_SHOT[c]]
        S = np.nan_to_num(scores(predict(api, GENERAL, images, select=ids), ids))
        per_class = np.stack([S[:, [ids.index(cid) for cid, _ in ZERO_SHOT[c]]].sum(axis=1) for c in range(10)],
                             axis=1)
        return top1(per_class, data.test_y)
    S = scores(predict(api, GENERAL, images, select=CLASS_IDS, version=version), CLASS_IDS)
    return top1(S, data.test_y)


def oracle_probe(Xtr: np.ndarray, Xte: np.ndarray, data: Fashion) -> dict[str, Any]:
    import warnings

    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    t1 = time.monotonic()
    probe = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], cv=3,
                                                                 max_iter=3000, scoring="accuracy"))
    # one BLAS thread: on 2 busy cores the threaded solver was 10x slower
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe.fit(Xtr, data.train_y)
    acc = float((probe.predict(Xte) == data.test_y).mean())
    return {"accuracy": acc, "train_images": len(Xtr), "C": float(probe[-1].C_[0]),
            "fit_seconds": round(time.monotonic() - t1, 1)}
