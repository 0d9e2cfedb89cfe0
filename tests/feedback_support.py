"""Helpers for the feedback tests: real predictions and searches, feedback bodies as clients send them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from tests.helpers import Api, b64

GENERAL = "aaa03c23b3724a16a56b629203edc62c"
FACE = "a403429f2ddf4b49b307e318f00e528b"
EMBED = "bbb5f41425b8468d9b7a554ff10f8581"
LOGO = "c443119bf2ed4da98487520d01a0b1e3"
LOGO_BASE_VERSION = "ef7c4a5a7c764b94b5b5b3b1f1e5e1b0"  # the version the Python client's capture names

# The 8x8 red PNG every captured client stores and predicts on (../shared/wire/*.json, beside the repository).
RED_PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEklEQVR4nGP4z8CAFWEXHbQSACj/P8Fu7N9hAAAAAElFTkSuQmCC"

WIRE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "wire"


def predict(api: Api, model: str, image: bytes | None = None, *, input_id: str | None = None,
            version: str | None = None, image_b64: str | None = None) -> dict:
    """One real predict; returns its output (whose id feedback refers to)."""
    item: dict[str, Any] = {"data": {"image": {"base64": image_b64 or b64(image or b"")}}}
    if input_id:
        item["id"] = input_id
    path = f"/models/{model}" + (f"/versions/{version}" if version else "") + "/outputs"
    r = api.post(path, {"inputs": [item]})
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["status"]["code"] == 10000, out
    return out


def concept_body(output_id: str, concepts: list[dict], *, input_id: str | None = None, event_type: Any = "annotation",
                 end_user_id: str | None = "user-1", session_id: str | None = "session-1",
                 image: dict | None = None) -> dict:
    info: dict[str, Any] = {"event_type": event_type, "output_id": output_id}
    if end_user_id is not None:
        info["end_user_id"] = end_user_id
    if session_id is not None:
        info["session_id"] = session_id
    data: dict[str, Any] = {"concepts": concepts}
    if image is not None:
        data["image"] = image
    body: dict[str, Any] = {"input": {"data": data, "feedback_info": info}}
    if input_id is not None:
        body["input"]["id"] = input_id
    return body


def region_body(output_id: str, regions: list[dict], **kw: Any) -> dict:
    body = concept_body(output_id, [], **kw)
    data = body["input"]["data"]
    del data["concepts"]
    data["regions"] = regions
    return body


def region(box: dict | None = None, feedback: Any = None, concepts: list[dict] | None = None,
           region_id: str | None = None) -> dict:
    info: dict[str, Any] = {}
    if box is not None:
        info["bounding_box"] = box
    if feedback is not None:
        info["feedback"] = feedback
    out: dict[str, Any] = {"region_info": info, "data": {"concepts": concepts if concepts is not None else
                                                        [{"id": "face", "value": True}]}}
    if region_id is not None:
        out["id"] = region_id
    return out


def search_body(search_id: str, input_id: str, *, event_type: Any = "search_click", end_user_id: str | None = "user-1",
                session_id: str | None = "session-1") -> dict:
    info: dict[str, Any] = {"event_type": event_type, "search_id": search_id}
    if end_user_id is not None:
        info["end_user_id"] = end_user_id
    if session_id is not None:
        info["session_id"] = session_id
    return {"input": {"id": input_id, "feedback_info": info}}


def feedback(api: Api, **params: Any) -> list[dict]:
    r = api.get("/feedback", params=params)
    assert r.status_code == 200, r.text
    return r.json()["feedback"]


def status(r: Any) -> tuple[int, int, str]:
    """(HTTP status, Clarifai code, details) of a response."""
    st = r.json()["status"]
    return r.status_code, st["code"], st.get("details", "")


def wire_requests(name: str) -> list[dict]:
    return json.loads((WIRE_DIR / name).read_text())


def wire_feedback(name: str) -> list[dict]:
    """The feedback requests a client really sent, in order (body_raw kept for invalid JSON)."""
    return [copy.deepcopy(r) for r in wire_requests(name) if r["path"].endswith("/feedback")]
