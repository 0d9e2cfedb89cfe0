"""Judged regions drawn on an event's image: the judged box in its verdict's colour, the predicted
box a feedback moved beside it in thin white, nothing else touched."""

from __future__ import annotations

import io

from PIL import Image

from visionloop.inference.predictions import Box
from visionloop.services.input_images import draw_regions


def _grey(size: int = 100) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), (128, 128, 128)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def test_a_moved_box_is_drawn_beside_where_it_was_predicted() -> None:
    regions = [{"feedback": "misplaced", "box": [0.5, 0.5, 0.9, 0.9], "region_id": "r1"},
               {"feedback": "false_positive", "box": [0.1, 0.6, 0.3, 0.8], "region_id": "r2"},
               {"feedback": "accurate", "box": None}]
    predicted = {"r1": Box(0.1, 0.1, 0.4, 0.4), "r2": Box(0.1, 0.6, 0.3, 0.8)}
    image = Image.open(io.BytesIO(draw_regions(_grey(), regions, predicted))).convert("RGB")
    assert _near(image.getpixel((50, 70)), (245, 158, 11))   # misplaced: the corrected box, amber
    assert _near(image.getpixel((10, 25)), (255, 255, 255))  # where it was predicted, white
    assert _near(image.getpixel((60, 20)), (220, 38, 38))    # false positive (not moved): red only
    assert _near(image.getpixel((30, 30)), (128, 128, 128), 12)  # inside the boxes: the image as it was
