"""Focus (sharpness) of an image and its in-focus areas, as Clarifai's focus model reported them.

Why this way: sharpness needs no weights. The classic measure is the variance of the Laplacian
of the grey image: sharp edges give strong second derivatives, blur flattens them. The grey
image is first scaled so its longer side is :data:`SIDE` px (the measure depends on scale), and
for any area:

- ``value`` = v² / (v² + K²), v the variance of the 4-neighbour Laplacian over the area and
  K = :data:`HALF_FOCUS_VARIANCE` (value 0.5 there): a steep, bounded map of v onto 0..1;
- ``density`` = the share of the area's pixels whose |Laplacian| is at least :data:`EDGE`: how much
  of it carries sharp detail.

The image gets both over its whole area; its regions are the cells of a :data:`GRID` x
:data:`GRID` grid whose own value is at least 0.5 (a featureless cell, such as clear sky, has no
detail to be sharp and is never a region).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from visionloop.ids import new_id
from visionloop.inference.predictions import Box, Focus, Region
from visionloop.inference.preprocess import to_rgb

SIDE = 512
HALF_FOCUS_VARIANCE = 100.0  # on 0..255 greys: a one-pixel Gaussian blur of a sharp photo falls below it
EDGE = 20.0
GRID = 4
IN_FOCUS = 0.5


def laplacian(image: Image.Image) -> np.ndarray:
    """The 4-neighbour Laplacian of the grey image scaled to :data:`SIDE` px on its longer side."""
    grey = to_rgb(image).convert("L")
    scale = SIDE / max(grey.size)
    grey = grey.resize((max(3, round(grey.width * scale)), max(3, round(grey.height * scale))),
                       Image.Resampling.BILINEAR)
    a = np.asarray(grey, np.float32)
    return a[1:-1, :-2] + a[1:-1, 2:] + a[:-2, 1:-1] + a[2:, 1:-1] - 4 * a[1:-1, 1:-1]


def area_focus(lap: np.ndarray) -> Focus:
    v = float(lap.var()) if lap.size else 0.0
    value = v * v / (v * v + HALF_FOCUS_VARIANCE ** 2)
    density = float((np.abs(lap) >= EDGE).mean()) if lap.size else 0.0
    return Focus(value=value, density=density)


def focus(image: Image.Image) -> tuple[Focus, list[Region]]:
    """The image's focus and its in-focus grid cells as regions (boxes in fractions of the image)."""
    lap = laplacian(image)
    h, w = lap.shape
    rows = [int(y) for y in np.linspace(0, h, GRID + 1)]
    cols = [int(x) for x in np.linspace(0, w, GRID + 1)]
    regions = []
    for i in range(GRID):
        for j in range(GRID):
            cell = area_focus(lap[rows[i]:rows[i + 1], cols[j]:cols[j + 1]])
            if cell.value >= IN_FOCUS:
                box = Box(rows[i] / h, cols[j] / w, rows[i + 1] / h, cols[j + 1] / w)
                regions.append(Region(id=new_id(), box=box, concepts=(), value=cell.value, focus=cell))
    return area_focus(lap), regions
