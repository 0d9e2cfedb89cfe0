"""The offline stand-ins for Clarifai's public models: NSFW's mapping from NudeNet's classes, the
W3C colour names, the focus measure (docs/public-models.md)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageColor, ImageFilter

from tests.inference.conftest import photo
from visionloop.inference.colors import CSS3_NAMES, css3_palette, dominant_colors, nearest_css3
from visionloop.inference.focus import GRID, focus
from visionloop.inference.nudity import EXPLICIT, LABELS, NudityDetector, letterbox, nsfw_scores
from visionloop.inference.runtime import ModelRuntime
from visionloop.services.training.scoring import base_scores


def one_hot(**confidences: float) -> np.ndarray:
    row = np.zeros((1, len(LABELS)), np.float32)
    for name, value in confidences.items():
        row[0, LABELS.index(name)] = value
    return row


def test_the_explicit_classes_are_the_exposed_sexual_body_parts() -> None:
    assert EXPLICIT == {"FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED", "FEMALE_BREAST_EXPOSED",
                        "BUTTOCKS_EXPOSED", "ANUS_EXPOSED"}
    assert EXPLICIT <= set(LABELS) and len(LABELS) == 18


@pytest.mark.parametrize("name", sorted(EXPLICIT))
def test_an_explicit_class_makes_the_nsfw_score(name: str) -> None:
    assert nsfw_scores(one_hot(**{name: 0.83}))[0] == pytest.approx(0.83)


@pytest.mark.parametrize("name", sorted(set(LABELS) - EXPLICIT))
def test_covered_parts_faces_feet_and_a_bare_chest_are_not_nsfw(name: str) -> None:
    assert nsfw_scores(one_hot(**{name: 0.99}))[0] == 0.0


def test_the_nsfw_score_is_the_highest_explicit_confidence() -> None:
    rows = np.concatenate([one_hot(BUTTOCKS_EXPOSED=0.3, FEMALE_BREAST_EXPOSED=0.7, FACE_FEMALE=0.95),
                           one_hot(ANUS_EXPOSED=0.1, BELLY_EXPOSED=0.9), one_hot()])
    assert nsfw_scores(rows).tolist() == pytest.approx([0.7, 0.1, 0.0])


def test_letterbox_is_nudenets_input() -> None:
    """NudeNet pads to a square on black at the bottom and right, then resizes to 320 px."""
    x = letterbox(Image.new("RGB", (200, 100), (255, 0, 0)))
    assert x.shape == (3, 320, 320) and x.dtype == np.float32
    assert x[:, :150, :].mean(axis=(1, 2)).tolist() == pytest.approx([1.0, 0.0, 0.0], abs=0.01)
    assert x[:, 170:, :].max() == 0.0


def test_the_detector_scores_every_class_for_a_batch() -> None:
    detector = NudityDetector(threads=1)
    scores = detector.class_scores([photo("astronaut"), photo("rocket")])
    assert scores.shape == (2, len(LABELS)) and ((0 <= scores) & (scores <= 1)).all()
    assert scores[0, LABELS.index("FACE_FEMALE")] > 0.5  # the astronaut's face
    assert nsfw_scores(scores).max() < 0.05
    assert detector.class_scores([]).shape == (0, len(LABELS))


def test_every_css3_colour_is_named_once() -> None:
    palette = css3_palette()
    by_value: dict[str, set[str]] = {}
    for name in ImageColor.colormap:  # values are hex, or tuples once Pillow parsed them: ask by name
        by_value.setdefault("#{:02x}{:02x}{:02x}".format(*ImageColor.getrgb(name)[:3]), set()).add(name)
    assert set(palette.hexes) == set(by_value) and len(palette.hexes) == len(set(palette.hexes))
    for name, value in zip(CSS3_NAMES, palette.hexes):
        assert name.lower() in by_value[value]


def test_a_css3_colour_is_its_own_nearest_name() -> None:
    rgb = np.array([ImageColor.getrgb(h) for h in css3_palette().hexes], np.float32)
    assert nearest_css3(rgb) == list(range(len(CSS3_NAMES)))


def test_dominant_colours_of_stripes() -> None:
    image = Image.new("RGB", (60, 60), (255, 255, 0))
    image.paste((0, 128, 0), (0, 0, 60, 20))
    colors = dominant_colors(image)
    assert [(c.w3c_name, c.raw_hex, round(c.value, 3)) for c in colors] == [("Yellow", "#ffff00", 0.667),
                                                                             ("Green", "#008000", 0.333)]


def test_blur_lowers_focus_and_removes_in_focus_cells() -> None:
    sharp = photo("camera")
    values = [focus(sharp.filter(ImageFilter.GaussianBlur(r)) if r else sharp)[0].value for r in (0, 1, 2, 4)]
    assert values == sorted(values, reverse=True) and values[0] > 0.9 and values[-1] < 0.01
    overall, regions = focus(sharp.filter(ImageFilter.GaussianBlur(4)))
    assert regions == [] and overall.density < 0.01


def test_in_focus_cells_are_where_the_detail_is() -> None:
    """A sharp photo whose left half is blurred: only cells of the right half are in focus."""
    image = photo("camera").convert("RGB")
    left = image.crop((0, 0, image.width // 2, image.height)).filter(ImageFilter.GaussianBlur(4))
    image.paste(left, (0, 0))
    _, regions = focus(image)
    assert regions and all(r.box.left >= 0.5 for r in regions) and len(regions) <= GRID * GRID // 2
    assert all(r.focus is not None and r.focus.value == r.value for r in regions)


def test_a_domain_views_base_scores_are_generals_within_the_domain(runtime: ModelRuntime) -> None:
    """Evaluation re-scores held-out images from stored features: the food view knows espresso, not cats."""
    features = runtime.forward([photo("coffee")]).features
    general = base_scores(runtime, "general", features, ["n07920052", "n02123045"])[0]
    food = base_scores(runtime, "food", features, ["n07920052", "n02123045"])[0]
    assert food == {"n07920052": general["n07920052"]} and general["n07920052"] > 0.3
    assert base_scores(runtime, "nsfw", features, ["nsfw"]) == [{}]
