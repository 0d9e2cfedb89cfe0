"""Fixtures for the bundled models: each network loads once per test session, as once per process."""

from __future__ import annotations

import pytest
from PIL import Image

from visionloop.inference.backbone import Backbone
from visionloop.inference.concepts import ImageNetConcepts, load_imagenet_concepts
from visionloop.inference.faces import FaceDetector


def photo(name: str) -> Image.Image:
    """A real photo from scikit-image's bundled data (astronaut, chelsea, coffee, rocket, ...)."""
    from skimage import data

    return Image.fromarray(getattr(data, name)())


@pytest.fixture(scope="session")
def backbone() -> Backbone:
    return Backbone(threads=2)


@pytest.fixture(scope="session")
def face_detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="session")
def concepts() -> ImageNetConcepts:
    return load_imagenet_concepts()
