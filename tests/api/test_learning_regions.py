"""Region learning through HTTP: face-model versions calibrated from region feedback on real photos.

The face detector (BlazeFace) finds the astronaut's and the cameraman's faces, and also, at 0.5 to
0.7, the cat's face in ``chelsea`` and the snake of the scikit-image logo. An app that wants human
faces only says so with ``false_positive``; the versions it trains raise the threshold once enough
detections were judged, and drop a region it was told about repeatedly.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageEnhance

from tests.feedback_support import FACE, LOGO, region, region_body
from tests.helpers import Api, b64, scene, scene_variants, train
from visionloop.core import VisionLoop
from visionloop.store.tables import Output

FACE_BASE = "34ce21a40cc24b6b96ffee54aabff139"




def jpeg(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def variants(name: str, n: int, seed: int) -> list[bytes]:
    return scene_variants(scene(name), n, seed, quality=90)


def predict(api: Api, images: list[bytes], version: str | None = None) -> list[dict]:
    path = f"/models/{FACE}" + (f"/versions/{version}" if version else "") + "/outputs"
    outputs = []
    for start in range(0, len(images), 16):
        r = api.post(path, {"inputs": [{"data": {"image": {"base64": b64(d)}}} for d in images[start:start + 16]]})
        assert r.status_code == 200, r.text
        outputs += r.json()["outputs"]
    return outputs


def judge(api: Api, outputs: list[dict], feedback: str) -> int:
    """Say ``feedback`` about the best region of each output that has one; how many were judged."""
    n = 0
    for out in outputs:
        if not out["data"].get("regions"):
            continue
        best = out["data"]["regions"][0]
        body = region_body(out["id"], [region(None, feedback, region_id=best["id"])], end_user_id="reviewer")
        r = api.post(f"/models/{FACE}/feedback", body)
        assert r.status_code == 200, r.text
        n += 1
    return n




def scores(outputs: list[dict]) -> list[list[float]]:
    return [[round(reg["value"], 3) for reg in out["data"].get("regions", [])] for out in outputs]


def test_thresholds_move_only_with_enough_evidence(api: Api, other_api: Api, core: VisionLoop) -> None:
    humans = variants("astronaut", 24, 1) + variants("camera", 24, 2)
    cats = variants("chelsea", 24, 3)
    faces, cat_faces = predict(api, humans), predict(api, cats)

    # a few judgements: the threshold keeps its default (the version may still remember the cats)
    judged = judge(api, faces[:10], "accurate") + judge(api, cat_faces[:8], "false_positive")
    assert judged < 30
    first = train(api, FACE)
    if first["status"]["code"] == 21100:
        threshold = first["visionloop"]["learned"]["thresholds"]["face"]
        assert not threshold["calibrated"] and "fewer than 30" in threshold["reason"], threshold
    else:
        assert first["status"]["code"] == 21117 and "fewer than 30" in first["status"]["details"], first

    # enough judged detections on the training side: the threshold rises above the cats' faces
    judge(api, faces[10:], "accurate")
    judge(api, cat_faces[8:], "false_positive")
    second = train(api, FACE)
    assert second["status"]["code"] == 21100, second
    info = second["visionloop"]
    threshold = info["learned"]["thresholds"]["face"]
    assert threshold["calibrated"] and threshold["n_judged"] >= 30, threshold
    assert 0.6 < threshold["threshold"] < 0.9, threshold
    holdout = second["metrics"]["holdout"]
    assert holdout["challenger"]["f1"]["value"] > holdout["champion"]["f1"]["value"], holdout
    assert info["promoted"] is True, info["decision"]

    # the app predicts with it: fresh cat faces are gone, fresh human faces stay
    fresh_cats = predict(api, variants("chelsea", 6, 30))
    assert all(out["model"]["model_version"]["id"] == second["id"] for out in fresh_cats)
    assert not any(scores(fresh_cats)), scores(fresh_cats)
    fresh_humans = predict(api, variants("astronaut", 3, 31) + variants("camera", 3, 32))
    assert sum(1 for s in scores(fresh_humans) if s) >= 5, scores(fresh_humans)
    with core.db.session() as s:  # outputs of the version keep their candidates for the next training ...
        stored = s.get(Output, fresh_cats[0]["id"])
    assert stored is not None and stored.result["candidates"], "no raw candidates stored with the output"
    assert "candidates" not in fresh_cats[0]["data"]                     # ... which are not shown

    # another app still sees the cat's face
    other = predict(other_api, variants("chelsea", 6, 30))
    assert other[0]["model"]["model_version"]["id"] == FACE_BASE
    assert any(scores(other)), scores(other)


def test_a_repeated_false_positive_is_suppressed(api: Api, core: VisionLoop) -> None:
    logo = scene("logo")
    seen = [jpeg(logo.resize((s, s))) for s in (450, 400, 320, 280)]
    seen.append(jpeg(ImageEnhance.Brightness(logo).enhance(0.9)))
    outputs = predict(api, seen + variants("astronaut", 3, 7))
    assert all(scores(outputs)), "the face model should (wrongly) find a face in the logo"
    assert judge(api, outputs[:5], "false_positive") == 5
    assert judge(api, outputs[5:], "accurate") == 3
    version = train(api, FACE)
    assert version["status"]["code"] == 21100, version
    learned = version["visionloop"]["learned"]
    assert learned["suppression"]["active"] and learned["suppression"]["false_positives"] >= 2, learned
    assert not learned["thresholds"]["face"]["calibrated"]  # 8 judged detections move no threshold
    assert version["visionloop"]["promoted"] is False  # too few held-out judgements to promote on

    again = [jpeg(logo.resize((s, s))) for s in (256, 350)] + variants("astronaut", 2, 8)
    pinned = predict(api, again, version=version["id"])
    assert scores(pinned)[:2] == [[], []], scores(pinned)
    assert all(scores(pinned)[2:]), "a real face must not be suppressed"
    base = predict(api, again[:2])
    assert base[0]["model"]["model_version"]["id"] == FACE_BASE and all(scores(base))

    # the version's own outputs keep their raw candidates: the next training reads them, no re-detection
    assert judge(api, pinned[2:], "accurate") == 2
    assert ("app-a", FACE) in core.learning.due(2)  # the worker would retrain on this much new feedback
    retrained = train(api, FACE)
    assert retrained["status"]["code"] == 21100, retrained
    trained_on = retrained["visionloop"]["trained_on"]
    assert (trained_on["outputs"], trained_on["redetected_outputs"]) == (10, 8), trained_on
    assert ("app-a", FACE) not in core.learning.due(1)


def test_logo_model_without_boxes_trains_nothing(api: Api) -> None:
    version = train(api, LOGO)
    assert version["status"]["code"] == 21117 and "no boxes drawn yet" in version["status"]["details"], version


@pytest.mark.parametrize("model", [FACE])
def test_no_region_feedback_trains_nothing(api: Api, model: str) -> None:
    version = train(api, model)
    assert version["status"]["code"] == 21117 and "nothing to learn" in version["status"]["details"], version


def test_the_report_of_a_detection_model_plots_its_regions(api: Api, core: VisionLoop) -> None:
    outputs = predict(api, variants("astronaut", 3, 11))
    assert judge(api, outputs[:2], "accurate") == 2 and judge(api, outputs[2:], "false_positive") == 1
    live, page = core.learning.report("app-a", FACE)
    assert (live["summary"]["tp"], live["summary"]["fp"]) == (2, 1)
    assert page.count("<img ") == 1 and "<h2>Per concept</h2><img" in page  # no run yet: no quality over time
    assert "Precision-recall" not in page  # a detection's feedback judges boxes, not scores to sweep
