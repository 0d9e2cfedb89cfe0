"""The review queue's boxes: predicted boxes in question drawn on their stored image, each said
correct or wrong by the operator (or a missed one added), stored as the input's annotated regions
that the API shows and detection learning reads."""

from __future__ import annotations

import io
import re

from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import make_api
from tests.console.support import FACE, form_token, page_token, sign_in
from tests.helpers import Api, b64, png_bytes
from visionloop.core import VisionLoop
from visionloop.services.training.detection_learning import annotated_images
from visionloop.store.tables import Input, Output

BOX = [0.2, 0.2, 0.8, 0.8]


def _predicted(core: VisionLoop, api: Api, input_id: str, score: float, name: str = "face",
               colour: tuple[int, int, int] = (255, 255, 255)) -> str:
    """A stored image and what a detection model would have said of it: one box, ``score`` sure."""
    r = api.post("/inputs", {"inputs": [{"id": input_id, "data": {"image": {"base64": b64(png_bytes(
        colour, (100, 100)))}}}]})
    assert r.status_code == 200, r.text
    model = core.models.get(api.app_id, FACE).model
    with core.db.transaction() as s:
        digest = s.get(Input, (api.app_id, input_id)).digest
        s.add(Output(id=f"out-{input_id}", app_id=api.app_id, model_pk=model.pk, version_id="v", input_id=None,
                     digest=digest, key_id="k", result={"concepts": [], "regions": [
                         {"id": "r1", "box": BOX, "value": score, "concepts": [["face", name, score]]}]}))
    return f"out-{input_id}"


def _box_form(page: str, verdict: str) -> dict[str, str]:
    return {"csrf_token": form_token(page), "input_id": "photo", "concept_id": "face", "verdict": verdict,
            "top_row": "0.2", "left_col": "0.2", "bottom_row": "0.8", "right_col": "0.8"}


def _regions(api: Api, input_id: str) -> list[tuple[list[float], list[tuple[str, float]]]]:
    data = api.get(f"/inputs/{input_id}").json()["input"]["data"]
    return [([r["region_info"]["bounding_box"][k] for k in ("top_row", "left_col", "bottom_row", "right_col")],
             [(c["id"], c["value"]) for c in r["data"]["concepts"]]) for r in data.get("regions") or []]


def test_an_unsure_box_is_drawn_and_the_operators_word_is_an_annotation_learning_reads(
        client: TestClient, api: Api, core: VisionLoop) -> None:
    _predicted(core, api, "photo", 0.5)
    _predicted(core, api, "sure", 0.97, colour=(200, 200, 255))
    sign_in(client, api.key)
    page = client.get("/console/review").text
    boxes = page[page.index("<h2>Boxes in question"):]
    assert "<code>photo</code>" in boxes and "<code>sure</code>" not in boxes
    assert "[0.200, 0.200, 0.800, 0.800]" in boxes and "0.50" in boxes
    drawn = re.search(r'<img class="drawn" alt="[^"]*" src="([^"]+)"', boxes).group(1)
    image = Image.open(io.BytesIO(client.get(drawn).content)).convert("RGB")
    assert max(image.getpixel((20, 50))) < 60 and min(image.getpixel((50, 50))) > 230  # dark: not labelled yet

    r = client.post("/console/review/box", data=_box_form(page, "wrong"), headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text  # the input's part alone
    assert '<td class="label">wrong</td>' in r.text
    assert _regions(api, "photo") == [(BOX, [("face", 0.0)])]
    with core.db.session() as s:
        taught = [t for _, t in annotated_images(s, api.app_id, None).values()]
    assert [(t.truths, [c for c, _ in t.false_positives]) for t in taught] == [([], ["face"])]
    redrawn = re.search(r'<img class="drawn" alt="[^"]*" src="([^"]+)"', r.text).group(1)
    assert redrawn != drawn  # the drawing's URL changes with the label
    r_, g, b = Image.open(io.BytesIO(client.get(redrawn).content)).convert("RGB").getpixel((20, 50))
    assert r_ > 150 and g < 120, (r_, g, b)  # wrong: false_positive's red

    r = client.post("/console/review/box", data=_box_form(page, "correct"), follow_redirects=False)
    assert r.status_code == 303  # without htmx: back to the page
    assert _regions(api, "photo") == [(BOX, [("face", 1.0)])]
    with core.db.session() as s:
        taught = [t for _, t in annotated_images(s, api.app_id, None).values()]
    assert [[c for c, _ in t.truths] for t in taught] == [["face"]]


def test_end_users_disagreeing_on_a_sure_box_bring_it_to_review(client: TestClient, api: Api,
                                                                core: VisionLoop) -> None:
    output_id = _predicted(core, api, "photo", 0.97)
    for user, verdict in (("u1", "accurate"), ("u2", "false_positive")):
        r = api.post(f"/models/{FACE}/feedback", {"input": {"id": "photo", "data": {"regions": [
            {"id": "r1", "region_info": {"feedback": verdict}, "data": {"concepts": [{"id": "face", "value": True}]}}]},
            "feedback_info": {"event_type": "annotation", "output_id": output_id, "end_user_id": user}}})
        assert r.status_code == 200, r.text
    sign_in(client, api.key)
    boxes = client.get("/console/review").text.split("<h2>Boxes in question")[1]
    assert "<code>photo</code>" in boxes and "accurate 1" in boxes and "false_positive 1" in boxes


def test_a_missed_object_is_added_and_bad_coordinates_are_refused_naming_the_field(
        client: TestClient, api: Api, core: VisionLoop) -> None:
    _predicted(core, api, "photo", 0.5)
    sign_in(client, api.key)
    page = client.get("/console/review").text
    missed = {**_box_form(page, "correct"), "concept_id": "cat", "top_row": "0.1", "left_col": "0.5",
              "bottom_row": "0.4", "right_col": "0.9"}
    for change, field in (({"top_row": "abc"}, "box.top_row"), ({"right_col": "1.5"}, "box.right_col"),
                          ({"bottom_row": "0.05"}, "box: top_row"), ({"concept_id": ""}, "concept_id"),
                          ({"verdict": "maybe"}, "verdict")):
        r = client.post("/console/review/box", data={**missed, **change}, headers={"HX-Request": "true"})
        assert r.status_code == 400 and field in r.text.replace("&#39;", "'"), (change, r.text)
        assert 'class="review-image' in r.text  # htmx swaps the input's part in, reason shown there
        assert client.post("/console/review/box", data={**missed, **change}).status_code == 400
    for token in ("", "0" * 64):  # a box label is a state-changing form: CSRF-checked like the others
        r = client.post("/console/review/box", data={**missed, "csrf_token": token}, headers={"HX-Request": "true"})
        assert r.status_code == 403 and "CSRF" in r.text
    assert _regions(api, "photo") == []
    r = client.post("/console/review/box", data=missed, headers={"HX-Request": "true"})
    assert r.status_code == 200, r.text
    assert _regions(api, "photo") == [([0.1, 0.5, 0.4, 0.9], [("cat", 1.0)])]


def test_box_labels_need_the_inputs_scope_and_the_apps_own_input(client: TestClient, api: Api, other_api: Api,
                                                                 core: VisionLoop) -> None:
    _predicted(core, api, "photo", 0.5)
    _predicted(core, other_api, "theirs", 0.5)
    reader = make_api(core, client, api.app_id, ("feedback_admin",))
    sign_in(client, reader.key)
    page = client.get("/console/review").text
    assert "<code>photo</code>" in page and "/console/review/box" not in page and "<code>theirs</code>" not in page
    data = {**_box_form(page, "correct"), "csrf_token": page_token(client)}
    r = client.post("/console/review/box", data=data)
    assert r.status_code == 403 and "'inputs' scope" in r.text.replace("&#39;", "'")
    assert client.get("/console/review/photo/image").status_code == 403
    assert _regions(api, "photo") == []

    operator = TestClient(client.app, raise_server_exceptions=False)  # another browser
    sign_in(operator, api.key)
    r = operator.post("/console/review/box", data={**data, "csrf_token": page_token(operator), "input_id": "theirs"})
    assert r.status_code == 404
    assert operator.get("/console/review/theirs/image").status_code == 404
    assert _regions(other_api, "theirs") == []


def test_a_hostile_concept_name_on_a_box_is_inert(client: TestClient, api: Api, core: VisionLoop) -> None:
    _predicted(core, api, "photo", 0.5, name='<script>alert(1)</script>"><img src=x>')
    sign_in(client, api.key)
    page = client.get("/console/review").text
    assert "<script>alert" not in page and "<img src=x>" not in page and "&lt;script&gt;alert(1)" in page
