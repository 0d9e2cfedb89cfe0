"""Predict through HTTP with the real bundled models, on real photos."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select, update

from tests.helpers import Api, ImageServer, b64, photo, png_bytes, run_cli
from visionloop.core import VisionLoop
from visionloop.store.tables import Embedding, Output, utcnow

GENERAL = "aaa03c23b3724a16a56b629203edc62c"
FACE = "a403429f2ddf4b49b307e318f00e528b"
EMBED = "bbb5f41425b8468d9b7a554ff10f8581"
LOGO = "c443119bf2ed4da98487520d01a0b1e3"


def predict(api: Api, model: str, *images: bytes, path_extra: str = "", **model_body: Any) -> dict:
    body: dict[str, Any] = {"inputs": [{"data": {"image": {"base64": b64(img)}}} for img in images]}
    if model_body:
        body["model"] = model_body
    r = api.post(f"/models/{model}{path_extra}/outputs", body)
    assert r.status_code == 200, r.text
    return r.json()


def names(output: dict) -> list[str]:
    return [c["name"] for c in output["data"]["concepts"]]


def test_general_sees_a_cat_and_coffee(api: Api) -> None:
    out = predict(api, GENERAL, photo("chelsea"), photo("coffee"))["outputs"]
    cat, coffee = names(out[0]), names(out[1])
    assert any(n in cat[:5] for n in ("tabby cat", "tiger cat", "Egyptian Mau", "tabby", "tiger cat")), cat[:5]
    assert "cat" in cat[:10], cat[:10]
    assert any("espresso" in n or "cup" in n for n in coffee[:5]), coffee[:5]
    assert len(out[0]["data"]["concepts"]) == 20  # Clarifai's default max_concepts
    values = [c["value"] for c in out[0]["data"]["concepts"]]
    assert values == sorted(values, reverse=True) and all(0 <= v <= 1 for v in values)
    assert out[0]["model"]["id"] == GENERAL and out[0]["model"]["model_version"]["id"]
    assert out[0]["id"] and out[0]["id"] != out[1]["id"]


def test_a_phone_sized_photo_is_seen_as_well_as_the_small_one(api: Api) -> None:
    """A 4032 px JPEG is decoded at reduced scale for the backbone: the same top concepts and scores as the
    small photo (that its reported size stays its own: tests/unit/test_images.py)."""
    small = Image.open(io.BytesIO(photo("chelsea"))).convert("RGB")
    big = io.BytesIO()
    small.resize((4032, 2688), Image.Resampling.BICUBIC).save(big, "JPEG", quality=90)
    out = predict(api, GENERAL, photo("chelsea"), big.getvalue())["outputs"]
    assert names(out[1])[:3] == names(out[0])[:3]
    scores = [{c["name"]: c["value"] for c in o["data"]["concepts"]} for o in out]
    assert all(abs(scores[1][n] - scores[0][n]) < 0.05 for n in names(out[0])[:3])


def test_output_config(api: Api) -> None:
    cat = photo("chelsea")
    top3 = predict(api, GENERAL, cat, output_info={"output_config": {"max_concepts": 3}})["outputs"][0]
    assert len(top3["data"]["concepts"]) == 3
    high = predict(api, GENERAL, cat, output_info={"output_config": {"min_value": 0.2}})["outputs"][0]
    assert high["data"]["concepts"] and all(c["value"] >= 0.2 for c in high["data"]["concepts"])
    sel = predict(api, GENERAL, cat, output_info={"output_config": {
        "select_concepts": [{"name": "cat"}, {"id": "n02084071"}]}})["outputs"][0]
    assert sorted(names(sel)) == ["cat", "dog"]
    r = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(cat)}}}],
                                                "model": {"output_info": {"output_config": {"min_value": 3}}}})
    assert r.status_code == 400 and r.json()["status"]["code"] == 21202


def test_face_detection_finds_the_astronaut(api: Api) -> None:
    out = predict(api, FACE, photo("astronaut"), photo("coffee"))["outputs"]
    faces = out[0]["data"]["regions"]
    assert len(faces) >= 1
    box = faces[0]["region_info"]["bounding_box"]
    truth = {"top_row": 0.05, "left_col": 0.34, "bottom_row": 0.40, "right_col": 0.62}
    inter_h = min(box["bottom_row"], truth["bottom_row"]) - max(box["top_row"], truth["top_row"])
    inter_w = min(box["right_col"], truth["right_col"]) - max(box["left_col"], truth["left_col"])
    assert inter_h > 0 and inter_w > 0, box
    assert faces[0]["data"]["concepts"][0]["name"] == "face"
    assert out[1]["data"]["regions"] == []


def test_embedding_model(api: Api) -> None:
    out = predict(api, EMBED, photo("chelsea"))["outputs"][0]
    emb = out["data"]["embeddings"][0]
    assert emb["num_dimensions"] == 1280 and len(emb["vector"]) == 1280
    assert abs(sum(x * x for x in emb["vector"]) - 1.0) < 1e-3


def test_outputs_and_embeddings_are_remembered(api: Api, core: VisionLoop) -> None:
    out = predict(api, GENERAL, photo("chelsea"))["outputs"][0]
    with core.db.session() as s:
        row = s.get(Output, out["id"])
        assert row is not None and row.app_id == "app-a" and row.version_id == out["model"]["model_version"]["id"]
        assert row.result["concepts"][0][1] == out["data"]["concepts"][0]["name"]
        assert core.blobs.exists(row.digest)
        assert s.scalar(select(Embedding).where(Embedding.digest == row.digest)) is not None


def test_predict_by_url_and_stored_input(api: Api, image_server: ImageServer) -> None:
    url = image_server.url("/cat.jpg", photo("chelsea"))
    r = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"url": url}}}]})
    assert r.json()["outputs"][0]["input"]["data"]["image"]["url"] == url
    assert "cat" in names(r.json()["outputs"][0])
    api.post("/inputs", {"inputs": [{"id": "kitty", "data": {"image": {"base64": b64(photo("chelsea"))}}}]})
    r = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"id": "kitty"}]})
    assert r.status_code == 200 and "cat" in names(r.json()["outputs"][0])
    assert r.json()["outputs"][0]["input"]["id"] == "kitty"


def test_partial_failure_is_mixed_status(api: Api) -> None:
    r = api.post(f"/models/{GENERAL}/outputs", {"inputs": [
        {"data": {"image": {"base64": b64(photo("chelsea"))}}},
        {"data": {"image": {"base64": b64(b"corrupt")}}},
        {"id": "no-such-input"},
        {"data": {"image": {"url": "http://10.0.0.1/x.png"}}},
    ]})
    assert r.status_code == 200
    body = r.json()
    assert body["status"]["code"] == 10010
    assert [o["status"]["code"] for o in body["outputs"]] == [10000, 30104, 30102, 30106]


def test_versions_and_names(api: Api) -> None:
    model = api.get(f"/models/{GENERAL}").json()["model"]
    vid = model["model_version"]["id"]
    assert api.get("/models/general-v1.3").json()["model"]["id"] == GENERAL
    out = predict(api, GENERAL, png_bytes(), path_extra=f"/versions/{vid}")["outputs"][0]
    assert out["model"]["model_version"]["id"] == vid
    r = api.post(f"/models/{GENERAL}/versions/ffffffffffffffffffffffffffffffff/outputs",
                 {"inputs": [{"data": {"image": {"base64": b64(png_bytes())}}}]})
    assert r.status_code == 404 and r.json()["status"]["code"] == 21200
    r = api.post("/models/no-such-model/outputs", {"inputs": [{"data": {"image": {"base64": b64(png_bytes())}}}]})
    assert r.status_code == 404 and r.json()["status"]["code"] == 21200
    versions = api.get(f"/models/{GENERAL}/versions").json()["model_versions"]
    assert [v["id"] for v in versions] == [vid]
    assert api.get(f"/models/{GENERAL}/versions/{vid}").json()["model_version"]["status"]["code"] == 21100


def test_model_list_search_and_output_info(api: Api) -> None:
    models = api.get("/models", params={"page": 1, "per_page": 20}).json()["models"]
    by_id = {m["id"]: m for m in models}
    assert {GENERAL, FACE, EMBED, LOGO} <= set(by_id)
    for m in models:
        assert m["name"] and m["created_at"] and m["output_info"]["type"] and m["model_version"]["status"]["code"]
    assert api.get("/models", params={"page": 2, "per_page": 20}).json()["models"] == []
    found = api.post("/models/searches", {"model_query": {"name": "general-v1.3", "type": None}}).json()["models"]
    assert [m["id"] for m in found] == [GENERAL]
    found = api.post("/models/searches", {"model_query": {"name": "gen*"}}).json()["models"]
    assert GENERAL in [m["id"] for m in found]
    assert api.post("/models/searches", {"model_query": {"type": "facedetect"}}).json()["models"][0]["id"] == FACE
    info = api.get(f"/models/{GENERAL}/output_info").json()["model"]["output_info"]["data"]["concepts"]
    version_created = api.get(f"/models/{GENERAL}").json()["model"]["model_version"]["created_at"]
    dog = {"id": "n02084071", "name": "dog", "value": 1.0, "app_id": "app-a", "created_at": version_created}
    assert len(info) > 1000 and dog in info  # each with created_at: the Python client requires one


def test_batch_limit(api: Api) -> None:
    r = api.post(f"/models/{GENERAL}/outputs", {"inputs": [{"data": {"image": {"base64": b64(png_bytes())}}}] * 129})
    assert r.status_code == 400 and "128" in r.json()["status"]["details"]


@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_unusual_image_modes(api: Api, mode: str) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(photo("chelsea"))).convert(mode).save(buf, "PNG")
    assert names(predict(api, GENERAL, buf.getvalue())["outputs"][0])


def test_output_retention_prunes_old_unjudged_outputs_only(api: Api, core: VisionLoop) -> None:
    old_plain, old_judged, recent = (predict(api, GENERAL, photo("chelsea"))["outputs"][0]["id"] for _ in range(3))
    r = api.post(f"/models/{GENERAL}/feedback", {"input": {"data": {"concepts": [{"id": "cat", "value": True}]},
                                                           "feedback_info": {"event_type": "annotation",
                                                                             "output_id": old_judged}}})
    assert r.status_code == 200, r.text
    with core.db.transaction() as s:
        s.execute(update(Output).where(Output.id.in_([old_plain, old_judged]))
                  .values(created_at=utcnow() - dt.timedelta(days=40)))
    r = run_cli(core, "outputs", "prune")
    assert r.returncode == 0 and "nothing pruned" in r.stdout, r.stdout + r.stderr  # the default keeps all
    r = run_cli(core, "outputs", "prune", env={"VISIONLOOP_OUTPUT_RETENTION_DAYS": "30"})
    assert r.returncode == 0 and "pruned 1 outputs older than 30 days" in r.stdout, r.stdout + r.stderr
    with core.db.session() as s:
        left = set(s.scalars(select(Output.id).where(Output.id.in_([old_plain, old_judged, recent]))))
    assert left == {old_judged, recent}
