"""The one box type, and the geometry shared by predictions, region metrics and calibration.

A :class:`Box` is a ``(top, left, bottom, right)`` tuple of fractions of the image with named
fields: learning reads it as a tuple, predictions and the wire by name. :func:`as_box` also
accepts any 4-sequence or anything with those four attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple


class Box(NamedTuple):
    """Fractions of the image: 0 <= top < bottom <= 1, 0 <= left < right <= 1."""

    top: float
    left: float
    bottom: float
    right: float

    def iou(self, other: Sequence[float]) -> float:
        return iou(self, other)

    @property
    def area(self) -> float:
        return area(self)


def as_box(obj: Any) -> Box:
    """A 4-tuple from a 4-sequence or an object with ``top/left/bottom/right``; checks the order."""
    if hasattr(obj, "top"):
        box = Box(float(obj.top), float(obj.left), float(obj.bottom), float(obj.right))
    else:
        if len(obj) != 4:
            raise ValueError(f"a box has 4 coordinates (top, left, bottom, right), got {len(obj)}")
        box = Box(float(obj[0]), float(obj[1]), float(obj[2]), float(obj[3]))
    if not (box[0] <= box[2] and box[1] <= box[3]):
        raise ValueError(f"box must have top <= bottom and left <= right, got {box}")
    return box


def area(box: Sequence[float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union; 0 when both boxes are empty."""
    h = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = h * w
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def same(a: Sequence[float], b: Sequence[float], tolerance: float = 1e-6) -> bool:
    """The same box up to float noise (a corrected box computed one way or another)."""
    return all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))
