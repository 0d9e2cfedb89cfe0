"""Image normalisation: torchvision's evaluation crop and every PIL mode to RGB."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visionloop.inference.preprocess import IMAGENET_MEAN, IMAGENET_STD, imagenet_batch, imagenet_crop, to_rgb


@pytest.mark.parametrize("size", [(640, 480), (300, 900), (224, 224), (50, 20)])
def test_crop_is_224_square(size: tuple[int, int]) -> None:
    assert imagenet_crop(Image.new("RGB", size)).shape == (224, 224, 3)


def test_crop_keeps_the_centre() -> None:
    image = Image.new("RGB", (512, 256), (0, 0, 255))
    image.paste((255, 0, 0), (192, 0, 320, 256))  # a red band in the middle quarter
    crop = imagenet_crop(image)
    assert tuple(crop[112, 112]) == (255, 0, 0)
    assert tuple(crop[112, 0]) == (0, 0, 255)


@pytest.mark.parametrize("size", [(451, 300), (333, 1000), (4000, 3000), (100, 30)])
def test_crop_matches_resizing_the_whole_image_then_cropping(size: tuple[int, int]) -> None:
    """torchvision's order of operations, done the expensive way, as the reference."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    w, h = size
    full = image.resize((256, int(256 * h / w)) if w <= h else (int(256 * w / h), 256), Image.Resampling.BILINEAR)
    left, top = round((full.width - 224) / 2), round((full.height - 224) / 2)
    reference = np.asarray(full.crop((left, top, left + 224, top + 224)), dtype=int)
    assert np.abs(imagenet_crop(image).astype(int) - reference).max() <= 1


_STRIP = """
import resource
from PIL import Image
from visionloop.inference.preprocess import imagenet_crop
size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (size + 256 * 1024 * 1024, resource.RLIM_INFINITY))
crop = imagenet_crop(Image.new("RGB", (20000, 1), (200, 10, 10)))
assert crop.shape == (224, 224, 3) and tuple(crop[0, 0]) == (200, 10, 10), crop.shape
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads its address space from /proc")
def test_a_long_thin_strip_fits_in_256_mib() -> None:
    """Resized whole, a 20000 x 1 strip (within every pixel limit) was a 5,120,000 x 256 image: ~4 GB."""
    done = subprocess.run([sys.executable, "-c", _STRIP], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_batch_is_normalised_nchw_float32() -> None:
    batch = imagenet_batch([Image.new("RGB", (300, 300), (255, 0, 128))] * 2)
    assert batch.shape == (2, 3, 224, 224) and batch.dtype == np.float32
    expected = (np.array([255, 0, 128]) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(batch[1, :, 100, 100], expected, rtol=1e-5)


def test_transparency_is_shown_on_white() -> None:
    rgb = to_rgb(Image.new("RGBA", (4, 4), (255, 0, 0, 0)))
    assert rgb.mode == "RGB" and rgb.getpixel((0, 0)) == (255, 255, 255)


def test_sixteen_bit_greyscale_scales_as_displayed() -> None:
    arr = np.array([[0, 32896, 65535]], dtype=np.uint16)
    rgb = to_rgb(Image.fromarray(arr))
    assert [rgb.getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
