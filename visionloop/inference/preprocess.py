"""Turn any PIL image into the tensors the bundled networks were trained on.

Why one module: every model must see images the same way, whatever the upload was (greyscale,
16-bit, RGBA, palette, CMYK, a JPEG whose EXIF says "rotated"); the ImageNet crop follows
torchvision's evaluation transform exactly, so the published accuracy carries over.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
RESIZE = 256
CROP = 224


def to_rgb(image: Image.Image) -> Image.Image:
    """Upright 8-bit RGB; transparent areas are composited on white as a viewer shows them."""
    image = ImageOps.exif_transpose(image)
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode.startswith("I") or image.mode == "F":
        return _grey_to_8bit(image).convert("RGB")
    return image.convert("RGB")


def _grey_to_8bit(image: Image.Image) -> Image.Image:
    """16-bit greys scale by 1/257 (as displayed); float greys by their range. convert() would clip."""
    wide = image if image.mode == "F" else image.convert("I")
    lo, hi = wide.getextrema()
    if wide.mode == "I":
        scale = 1.0 if hi <= 255 else 1 / 257
        return wide.point(lambda v: v * scale).convert("L")
    span = float(hi) - float(lo)
    return wide.point(lambda v: (v - lo) * (255 / span if span else 0.0)).convert("L")


def imagenet_crop(image: Image.Image) -> np.ndarray:
    """torchvision's eval transform: shorter side to 256 (bilinear), centre 224 crop, HWC uint8.

    Only the crop is resampled (its box in source coordinates, at the same scale per axis), which
    gives the same pixels (within one level of rounding) without materialising the resized image:
    for a 20000 x 1 strip that image would be 5,120,000 x 256 pixels, about 4 GB.
    """
    rgb = to_rgb(image)
    w, h = rgb.size
    if w <= h:
        size = (RESIZE, max(1, int(RESIZE * h / w)))
    else:
        size = (max(1, int(RESIZE * w / h)), RESIZE)
    sx, sy = w / size[0], h / size[1]
    top = int(round((size[1] - CROP) / 2.0))
    left = int(round((size[0] - CROP) / 2.0))
    box = (left * sx, top * sy, (left + CROP) * sx, (top + CROP) * sy)
    return np.asarray(rgb.resize((CROP, CROP), Image.Resampling.BILINEAR, box=box), dtype=np.uint8)


def imagenet_batch(images: Sequence[Image.Image]) -> np.ndarray:
    """Stack images into a normalised NCHW float32 batch for the ImageNet backbone."""
    return _normalised(np.stack([imagenet_crop(im) for im in images]))


def whole_image_batch(images: Sequence[Image.Image], size: int) -> np.ndarray:
    """Each whole image squeezed to size x size (no crop: a detector must see every corner), as
    :func:`imagenet_batch` normalises it. Boxes as fractions of the image keep their meaning."""
    return _normalised(np.stack([np.asarray(to_rgb(im).resize((size, size), Image.Resampling.BILINEAR),
                                            dtype=np.uint8) for im in images]))


def _normalised(batch: np.ndarray) -> np.ndarray:
    batch = (batch.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
