"""Detectors learned from boxes through HTTP: the logo model and an app's own detection model.

Images are made here: a logo drawn with PIL (``acme``: a red disc with a yellow bar; ``zen``: a blue
triangle on a white square) pasted at 20-40% of the width onto crops of scikit-image's photos,
some with an unrelated green striped badge beside it. Feedback bodies are those the official
clients send: the Python client's (``value`` 1.0, coordinates equal to 0 left out) and the JS
client's (``value`` true, every coordinate).
"""

from __future__ import annotations

import io
import random
from typing import Any

import pytest
from PIL import Image, ImageDraw

from tests.feedback_support import LOGO, predict, region_body, status
from tests.helpers import Api, b64, scene, train
from visionloop.core import VisionLoop
from visionloop.learning.boxes import iou

SIDE = 320
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "brick", "grass", "camera", "coins")


def _logo(kind: str, size: int) -> Image.Image:
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    if kind == "acme":
        d.ellipse((0, 0, size - 1, size - 1), fill=(220, 30, 40, 255))
        d.rectangle((size * 0.15, size * 0.4, size * 0.85, size * 0.6), fill=(250, 220, 40, 255))
    elif kind == "zen":
        d.rectangle((0, 0, size - 1, size - 1), fill=(255, 255, 255, 255))
        d.polygon([(size * 0.5, size * 0.1), (size * 0.9, size * 0.9), (size * 0.1, size * 0.9)], fill=(30, 60, 220, 255))
    else:  # a distractor
        d.rectangle((0, 0, size - 1, size - 1), fill=(40, 160, 60, 255))
        for k in range(0, size, max(2, size // 6)):
            d.rectangle((k, 0, k + size // 12, size - 1), fill=(10, 10, 10, 255))
    return img


def make_image(kinds: list[str], rng: random.Random) -> tuple[bytes, list[tuple[str, tuple[float, ...]]]]:
    """A JPEG with the given logos pasted apart from each other, and their boxes."""
    photo = scene(rng.choice(PHOTOS))
    w, h = photo.size
    side = int(min(w, h) * rng.uniform(0.6, 1.0))
    x0, y0 = rng.randint(0, w - side), rng.randint(0, h - side)
    canvas = photo.crop((x0, y0, x0 + side, y0 + side)).resize((SIDE, SIDE))
    boxes: list[tuple[str, tuple[float, ...]]] = []
    for kind in kinds:
        for _ in range(100):
            size = int(SIDE * rng.uniform(0.2, 0.4))
            x, y = rng.randint(0, SIDE - size), rng.randint(0, SIDE - size)
            box = (y / SIDE, x / SIDE, (y + size) / SIDE, (x + size) / SIDE)
            if all(iou(box, b) == 0 for _, b in boxes):
                break
        logo = _logo(kind, size)
        canvas.paste(logo, (x, y), logo)
        boxes.append((kind, box))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=90)
    return buf.getvalue(), [(k, b) for k, b in boxes if k != "badge"]


def drawn(concept: str, box: tuple[float, ...], client: str) -> dict[str, Any]:
    """A not_detected region as the Python client (1.0, zero coordinates left out) or JS client sends it."""
    names = ("top_row", "left_col", "bottom_row", "right_col")
    if client == "py":
        bounding = {n: round(v, 4) for n, v in zip(names, box, strict=True) if v != 0}
        return {"region_info": {"bounding_box": bounding, "feedback": "not_detected"},
                "data": {"concepts": [{"id": concept, "value": 1.0}]}}
    return {"region_info": {"bounding_box": dict(zip(names, box, strict=True)), "feedback": "not_detected"},
            "data": {"concepts": [{"id": concept, "value": True}]}}


def teach(api: Api, model: str, scenes: list[tuple[bytes, list]]) -> None:
    """Predict on each image, then draw the boxes the model missed (alternating client styles)."""
    for k, (image, boxes) in enumerate(scenes):
        out = predict(api, model, image)
        regions = [drawn(c, b, "py" if k % 2 else "js") for c, b in boxes]
        r = api.post(f"/models/{model}/feedback", region_body(out["id"], regions, end_user_id=f"user-{k % 3}"))
        assert r.status_code == 200, r.text


def found(api: Api, model: str, image: bytes) -> list[tuple[str, tuple[float, ...], float]]:
    out = predict(api, model, image)
    return [(r["data"]["concepts"][0]["id"], tuple(r["region_info"]["bounding_box"].get(k, 0.0) for k in
                                                   ("top_row", "left_col", "bottom_row", "right_col")), r["value"])
            for r in out["data"]["regions"]]


def hits(api: Api, model: str, tests: list[tuple[bytes, list]]) -> tuple[int, int, int]:
    """(boxes found at IoU 0.5, boxes, detections that match nothing) over the test images."""
    n_hit = n_box = n_false = 0
    for image, boxes in tests:
        dets = found(api, model, image)
        n_box += len(boxes)
        matched = {i for i, (c, b, _) in enumerate(dets) if any(c == tc and iou(b, tb) >= 0.5 for tc, tb in boxes)}
        n_hit += sum(any(c == tc and iou(b, tb) >= 0.5 for c, b, _ in dets) for tc, tb in boxes)
        n_false += len(dets) - len(matched)
    return n_hit, n_box, n_false


def scenes(kinds: list[str], n: int, seed: int, badge_every: int = 3) -> list[tuple[bytes, list]]:
    rng = random.Random(seed)
    return [make_image([kinds[k % len(kinds)]] + (["badge"] if k % badge_every == 0 else []), rng) for k in range(n)]


def test_the_logo_model_learns_a_logo_from_not_detected_boxes(api: Api, core: VisionLoop) -> None:
    teach(api, LOGO, scenes(["acme"], 24, seed=1))
    version = train(api, LOGO)
    assert version["status"]["code"] == 21100, version
    info = version["visionloop"]
    assert info["kind"] == "box_detector" and info["promoted"], info
    assert info["trained_on"]["boxes"] == 24 and version["metrics"]["cross_validation"]["f1"]["value"] > 0.5
    model = api.get(f"/models/{LOGO}").json()["model"]
    assert model["model_version"]["id"] == version["id"]  # the app's logo model is the trained version now
    n_hit, n_box, n_false = hits(api, LOGO, scenes(["acme"], 6, seed=2))
    assert n_hit >= 5 and n_false <= 1, (n_hit, n_box, n_false)
    empty = [found(api, LOGO, image) for image, _ in scenes(["badge"], 4, seed=3, badge_every=2)]
    assert sum(len(d) for d in empty) <= 1, empty
    _, page = core.learning.report("app-a", LOGO)
    assert "<h2>Example detections on judged images</h2><img" in page


def test_another_app_keeps_the_empty_logo_model(api: Api, other_api: Api) -> None:
    teach(api, LOGO, scenes(["acme"], 12, seed=4))
    assert train(api, LOGO)["status"]["code"] == 21100
    image, _ = scenes(["acme"], 1, seed=5)[0]
    assert found(other_api, LOGO, image) == []


def test_a_custom_detection_model_is_created_trained_and_predicts(api: Api) -> None:
    r = api.post("/models", {"model": {"id": "brands", "output_info": {
        "type": "visual-detector", "data": {"concepts": [{"id": "acme"}, {"id": "zen", "name": "Zen"}]}}}})
    assert r.status_code == 200, r.text
    model = r.json()["model"]
    assert model["output_info"]["type"] == "detection" and model["model_version"]["status"]["code"] == 21102
    assert {c["id"] for c in model["output_info"]["data"]["concepts"]} == {"acme", "zen"}
    r = api.post("/models/brands/outputs", {"inputs": [{"data": {"image": {"base64": b64(scenes(["acme"], 1, 6)[0][0])}}}]})
    assert r.status_code == 400 and r.json()["status"]["code"] == 21202, r.text  # as an untrained concept model
    assert "POST /v2/models/brands/versions" in r.json()["status"]["details"]

    teach(api, LOGO, scenes(["acme", "zen"], 40, seed=7))  # boxes drawn on another detector's outputs
    version = train(api, "brands")
    assert version["status"]["code"] == 21100 and version["visionloop"]["promoted"], version
    n_hit, n_box, n_false = hits(api, "brands", scenes(["acme", "zen"], 8, seed=8))
    assert n_hit >= 6 and n_false <= 2, (n_hit, n_box, n_false)
    names = {c["id"]: c["name"] for c in api.get("/models/brands/output_info").json()["model"]["output_info"]["data"]["concepts"]}
    assert names == {"acme": "acme", "zen": "Zen"}


def test_a_custom_detector_learns_from_input_annotations_alone(api: Api) -> None:
    """No prediction, no feedback: inputs added with their regions (the JS client's body: value true; a
    badge annotated as not acme) teach an app's own detection model."""
    r = api.post("/models", {"model": {"id": "brands", "output_info": {"type": "visual-detector",
                                                                      "data": {"concepts": [{"id": "acme"}]}}}})
    assert r.status_code == 200, r.text
    names = ("top_row", "left_col", "bottom_row", "right_col")
    inputs = []
    for k, (image, boxes) in enumerate(scenes(["acme"], 24, seed=13)):
        regions = [{"region_info": {"bounding_box": dict(zip(names, b, strict=True))},
                    "data": {"concepts": [{"id": c, "value": True}]}} for c, b in boxes]
        if k == 0:  # a region said not to show the concept: a negative like a false positive
            regions.append({"region_info": {"bounding_box": {"top_row": 0.0, "left_col": 0.0, "bottom_row": 0.1,
                                                             "right_col": 0.1}},
                            "data": {"concepts": [{"id": "acme", "value": False}]}})
        inputs.append({"id": f"shot-{k}", "data": {"image": {"base64": b64(image)}, "regions": regions}})
    for start in (0, 12):
        r = api.post("/inputs", {"inputs": inputs[start:start + 12]})
        assert r.status_code == 200 and r.json()["status"]["code"] == 10000, r.text
    version = train(api, "brands")
    assert version["status"]["code"] == 21100 and version["visionloop"]["promoted"], version
    trained_on = version["visionloop"]["trained_on"]
    assert (trained_on["boxes_from_annotations"], trained_on["boxes_from_feedback"], trained_on["events"]) == (24, 0, 0)
    assert trained_on["annotated_images"] == 24 and version["visionloop"]["learned"]["false_positives"] == 1
    assert "24 of its 24 boxes from input annotations, 0 from region feedback" in version["visionloop"]["decision"]
    n_hit, n_box, n_false = hits(api, "brands", scenes(["acme"], 6, seed=2))
    assert n_hit >= 5 and n_false <= 1, (n_hit, n_box, n_false)


def test_the_worker_retrains_a_custom_detector_on_boxes_naming_its_concepts(api: Api, core: VisionLoop) -> None:
    """Its first boxes come from other detectors' outputs and from annotated inputs: both count."""
    r = api.post("/models", {"model": {"id": "brands", "output_info": {"type": "visual-detector",
                                                                      "data": {"concepts": [{"id": "acme"}]}}}})
    assert r.status_code == 200, r.text
    teach(api, LOGO, scenes(["zen"], 2, seed=14))  # boxes of another concept: nothing for brands
    assert ("app-a", "brands") not in core.learning.due(1)
    teach(api, LOGO, scenes(["acme"], 2, seed=15))
    assert ("app-a", "brands") in core.learning.due(2) and ("app-a", "brands") not in core.learning.due(3)
    image, boxes = scenes(["acme"], 1, seed=16)[0]
    (concept, box), = boxes
    r = api.post("/inputs", {"inputs": [{"data": {"image": {"base64": b64(image)}, "regions": [{"region_info": {
        "bounding_box": dict(zip(("top_row", "left_col", "bottom_row", "right_col"), box, strict=True))},
        "data": {"concepts": [{"id": concept, "value": True}]}}]}}]})
    assert r.status_code == 200, r.text
    assert ("app-a", "brands") in core.learning.due(3)
    assert train(api, "brands")["status"]["code"] == 21117  # three boxes: refused, and read
    assert ("app-a", "brands") not in core.learning.due(1)


def test_too_few_boxes_is_21117_with_a_readable_reason(api: Api) -> None:
    teach(api, LOGO, scenes(["acme"], 4, seed=9))
    version = train(api, LOGO)
    assert version["status"]["code"] == 21117, version
    details = version["status"]["details"]
    assert "concept 'acme': 4 boxes, at least 10 needed" in details and "cross-validation" in details, details


@pytest.mark.parametrize("asked", ["visual-segmenter", "facedetect"])
def test_an_unknown_model_type_is_refused_naming_the_field(api: Api, asked: str) -> None:
    r = api.post("/models", {"model": {"id": "m", "output_info": {"type": asked, "data": {"concepts": [{"id": "a"}]}}}})
    assert status(r)[:2] == (400, 11102) and "model.output_info.type" in status(r)[2], r.text


def loose(box: tuple[float, ...], rng: random.Random) -> tuple[float, ...]:
    """A box drawn loosely: each edge moved by up to 10% of the box's size."""
    h, w = box[2] - box[0], box[3] - box[1]
    t, l, b, r = (v + rng.uniform(-0.1, 0.1) * s for v, s in zip(box, (h, w, h, w), strict=True))
    return (max(0.0, t), max(0.0, l), min(1.0, b), min(1.0, r))


def test_loose_boxes_and_a_user_drawing_elsewhere_are_outvoted(api: Api) -> None:
    """Two careful users draw each logo loosely; a third draws a box where there is none, every time."""
    rng = random.Random(11)
    for image, boxes in scenes(["acme"], 24, seed=12):
        out = predict(api, LOGO, image)
        (concept, box), = boxes
        wrong = (0.0, 0.0, 0.25, 0.25) if box[0] > 0.3 or box[1] > 0.3 else (0.7, 0.7, 0.95, 0.95)
        for user, drawn_box in (("careful-1", loose(box, rng)), ("careful-2", loose(box, rng)), ("elsewhere", wrong)):
            r = api.post(f"/models/{LOGO}/feedback", region_body(out["id"], [drawn(concept, drawn_box, "js")],
                                                                   end_user_id=user))
            assert r.status_code == 200, r.text
    version = train(api, LOGO)
    assert version["status"]["code"] == 21100 and version["visionloop"]["promoted"], version
    assert version["visionloop"]["trained_on"]["boxes"] == 24  # one box an image: the careful users'
    n_hit, n_box, n_false = hits(api, LOGO, scenes(["acme"], 6, seed=2))
    assert n_hit >= 5 and n_false <= 1, (n_hit, n_box, n_false)
