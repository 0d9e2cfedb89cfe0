"""Predict traffic for the alarm tests and bench: photos, and the same scenes drawn as line drawings.

The drawings show what the photos show, so what changes is the kind of image, as when an app that
took camera photos starts receiving sketches or scans.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageFilter, ImageOps

from tests.helpers import scene, scene_variants

SCENES = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry")


def photos(n: int, seed: int) -> list[bytes]:
    """``n`` varied JPEG photos, the scenes taking turns in a shuffled order."""
    per_scene = [scene_variants(scene(name), -(-n // len(SCENES)), seed + i, quality=85)
                 for i, name in enumerate(SCENES)]
    out = [img for group in zip(*per_scene) for img in group][:n]
    random.Random(seed).shuffle(out)
    return out


def drawings(n: int, seed: int) -> list[bytes]:
    """The photos of :func:`photos` as black-on-white line drawings."""
    out = []
    for data in photos(n, seed):
        grey = ImageOps.grayscale(Image.open(io.BytesIO(data)))
        lines = ImageOps.invert(ImageOps.autocontrast(grey.filter(ImageFilter.FIND_EDGES)))
        buf = io.BytesIO()
        lines.point(lambda v: 255 if v > 200 else 0).convert("RGB").save(buf, "PNG")
        out.append(buf.getvalue())
    return out
