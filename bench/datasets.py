"""Offline labelled images for the learning benchmark: Fashion-MNIST (Debian) and Google emoji (npm).

Prerequisites (both from package registries, no other network):

- ``apt-get install -y dataset-fashion-mnist`` puts the official IDX files under
  ``/usr/share/datasets/fashion-mnist/`` (``train-images-idx3-ubyte.gz`` ...); override with
  ``VISIONLOOP_FASHION_MNIST_DIR``.
- npm ``emoji-datasource-google@16.0.0`` (``img/google/64/*.png`` and ``emoji.json`` with each
  emoji's category and subcategory) is installed on first use with
  ``npm install --prefix bench/out/.npm emoji-datasource-google@16.0.0``; override the package
  folder with ``VISIONLOOP_EMOJI_DIR``.

Images are sent as PNG: Fashion-MNIST's 28x28 greys upscaled (bicubic) to 64x64, emoji as their
64x64 RGBA files (the server composites transparency on white).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
FASHION_DIR = Path(os.environ.get("VISIONLOOP_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
EMOJI_PACKAGE = "emoji-datasource-google"
EMOJI_VERSION = "16.0.0"
NPM_PREFIX = HERE / "out" / ".npm"

# Fashion-MNIST's classes in label order: (concept id sent as feedback, readable name).
FASHION_CLASSES: list[tuple[str, str]] = [
    ("fashion-tshirt-top", "T-shirt/top"), ("fashion-trouser", "Trouser"), ("fashion-pullover", "Pullover"),
    ("fashion-dress", "Dress"), ("fashion-coat", "Coat"), ("fashion-sandal", "Sandal"),
    ("fashion-shirt", "Shirt"), ("fashion-sneaker", "Sneaker"), ("fashion-bag", "Bag"),
    ("fashion-ankle-boot", "Ankle boot"),
]

# Emoji that depict a Fashion-MNIST class (by short_name): the cross-style relevance in search.
EMOJI_TO_FASHION: dict[str, int] = {
    "shirt": 0,            # 👕 t-shirt
    "jeans": 1,            # 👖
    "dress": 3,            # 👗
    "coat": 4, "lab_coat": 4,
    "sandal": 5, "thong_sandal": 5,
    "necktie": 6,          # 👔 a shirt with a tie
    "womans_clothes": 6,   # 👚 blouse
    "athletic_shoe": 7,    # 👟
    "handbag": 8, "purse": 8, "pouch": 8, "school_satchel": 8, "shopping_bags": 8,
    "boot": 9, "hiking_boot": 9,
}


class MissingData(RuntimeError):
    """A prerequisite data package is not installed; the message says how to install it."""


# -- Fashion-MNIST -----------------------------------------------------------------------------
def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = data[0] << 8 | data[1], data[2], data[3]
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@functools.lru_cache(maxsize=2)
def fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 28, 28) uint8, labels (n,) int) of the official ``train`` or ``test`` split."""
    prefix = {"train": "train", "test": "t10k"}[split]
    images, labels = FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz", FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz"
    if not images.exists() or not labels.exists():
        raise MissingData(f"Fashion-MNIST not found in {FASHION_DIR} (need {images.name} and {labels.name}). "
                          "Install it with:  sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist  "
                          "(or set VISIONLOOP_FASHION_MNIST_DIR to a folder holding the IDX .gz files)")
    x, y = _idx(images), _idx(labels).astype(np.int64)
    if len(x) != len(y):
        raise ValueError(f"{FASHION_DIR}: {len(x)} images but {len(y)} labels")
    return x, y


def fashion_png(pixels: np.ndarray, size: int = 64) -> bytes:
    """A 28x28 grey Fashion-MNIST image as a ``size`` px grey PNG (bicubic upscaling)."""
    image = Image.fromarray(pixels, mode="L").resize((size, size), Image.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return buf.getvalue()


def balanced_indices(labels: np.ndarray, per_class: int, rng: np.random.Generator,
                     exclude: np.ndarray | None = None) -> np.ndarray:
    """``per_class`` random indices of each label (shuffled together), avoiding ``exclude``."""
    banned = set() if exclude is None else set(map(int, exclude))
    out = []
    for c in np.unique(labels):
        pool = np.array([i for i in np.flatnonzero(labels == c) if int(i) not in banned])
        if len(pool) < per_class:
            raise ValueError(f"class {c}: only {len(pool)} images, {per_class} wanted")
        out.append(rng.choice(pool, per_class, replace=False))
    idx = np.concatenate(out)
    rng.shuffle(idx)
    return idx


# -- emoji ----------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Emoji:
    short_name: str
    category: str
    subcategory: str
    path: Path

    def png(self) -> bytes:
        return self.path.read_bytes()


def _emoji_dir() -> Path:
    override = os.environ.get("VISIONLOOP_EMOJI_DIR")
    if override:
        return Path(override)
    return NPM_PREFIX / "node_modules" / EMOJI_PACKAGE


def ensure_emoji() -> Path:
    """The emoji package folder, installed from the npm registry on first use."""
    folder = _emoji_dir()
    meta = folder / "package.json"
    if meta.exists() and json.loads(meta.read_text()).get("version") == EMOJI_VERSION:
        return folder
    if os.environ.get("VISIONLOOP_EMOJI_DIR"):
        raise MissingData(f"VISIONLOOP_EMOJI_DIR={folder} does not hold {EMOJI_PACKAGE} {EMOJI_VERSION}")
    npm = shutil.which("npm")
    if npm is None:
        raise MissingData(f"npm is needed once to install {EMOJI_PACKAGE}@{EMOJI_VERSION}: install Node.js/npm, or run "
                          f"npm install --prefix {NPM_PREFIX} {EMOJI_PACKAGE}@{EMOJI_VERSION} elsewhere and copy it")
    NPM_PREFIX.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(NPM_PREFIX),
                           f"{EMOJI_PACKAGE}@{EMOJI_VERSION}"], capture_output=True, text=True)
    if done.returncode != 0 or not meta.exists():
        raise MissingData(f"npm install {EMOJI_PACKAGE}@{EMOJI_VERSION} failed:\n{done.stderr[-2000:]}")
    return folder


@functools.lru_cache(maxsize=1)
def emoji() -> list[Emoji]:
    """Every emoji with a Google 64 px image (no skin-tone variants), in the package's order."""
    folder = ensure_emoji()
    out = []
    for e in json.loads((folder / "emoji.json").read_text()):
        path = folder / "img" / "google" / "64" / e["image"]
        if e.get("has_img_google") and path.exists() and e.get("category") != "Component":
            out.append(Emoji(e["short_name"], e["category"], e["subcategory"], path))
    out.sort(key=lambda x: x.path.name)
    return out
