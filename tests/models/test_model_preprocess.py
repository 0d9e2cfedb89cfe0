"""Image normalisation: torchvision's evaluation crop and every PIL mode to RGB."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from visionloop.models.preprocess import IMAGENET_MEAN, IMAGENET_STD, imagenet_batch, imagenet_crop, to_rgb


@pytest.mark.parametrize("size", [(640, 480), (300, 900), (224, 224), (50, 20)])
def test_crop_is_224_square(size: tuple[int, int]) -> None:
    assert imagenet_crop(Image.new("RGB", size)).shape == (224, 224, 3)


def test_crop_keeps_the_centre() -> None:
    image = Image.new("RGB", (512, 256), (0, 0, 255))
    image.paste((255, 0, 0), (192, 0, 320, 256))  # a red band in the middle quarter
    crop = imagenet_crop(image)
    assert tuple(crop[112, 112]) == (255, 0, 0)
    assert tuple(crop[112, 0]) == (0, 0, 255)


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
