"""Inputs annotated with regions through HTTP: stored, read back, patched, refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import Api, b64, png_bytes

COORDINATES = ("top_row", "left_col", "bottom_row", "right_col")


def region(box: tuple[float, ...], *concepts: tuple[str, Any], region_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"region_info": {"bounding_box": dict(zip(COORDINATES, box, strict=True))},
                           "data": {"concepts": [{"id": c, "value": v} for c, v in concepts]}}
    if region_id is not None:
        out["id"] = region_id
    return out


def add(api: Api, input_id: str, regions: list[dict[str, Any]]):  # type: ignore[no-untyped-def]
    return api.post("/inputs", {"inputs": [{"id": input_id, "data": {
        "image": {"base64": b64(png_bytes((200, 10, 10), (40, 30)))}, "regions": regions}}]})


def stored(api: Api, input_id: str) -> list[tuple[str, tuple[float, ...], dict[str, float]]]:
    got = api.get(f"/inputs/{input_id}").json()["input"]["data"].get("regions", [])
    return [(r["id"], tuple(r["region_info"]["bounding_box"][k] for k in COORDINATES),
             {c["id"]: c["value"] for c in r["data"]["concepts"]}) for r in got]


def test_regions_are_stored_and_read_back(api: Api) -> None:
    r = add(api, "shelf", [region((0.1, 0.2, 0.5, 0.6), ("acme", True), ("zen", False), region_id="r1"),
                           {"region_info": {"bounding_box": {"bottom_row": 0.4, "right_col": 0.3}},  # the Python
                            "data": {"concepts": [{"id": "zen", "value": 1.0}]}}])  # client leaves zeros out
    assert r.status_code == 200, r.text
    assert [x["id"] for x in r.json()["inputs"][0]["data"]["regions"]][0] == "r1"
    (rid1, box1, c1), (rid2, box2, c2) = stored(api, "shelf")
    assert (rid1, box1, c1) == ("r1", (0.1, 0.2, 0.5, 0.6), {"acme": 1.0, "zen": 0.0})
    assert len(rid2) == 32 and box2 == (0.0, 0.0, 0.4, 0.3) and c2 == {"zen": 1.0}
    assert {c["id"] for c in api.get("/concepts").json()["concepts"]} == {"acme", "zen"}
    listed = api.get("/inputs").json()["inputs"][0]["data"]["regions"]
    assert [x["id"] for x in listed] == ["r1", rid2]


def test_patch_merges_overwrites_and_removes_regions(api: Api) -> None:
    add(api, "shelf", [region((0.1, 0.1, 0.3, 0.3), ("acme", True), region_id="a"),
                       region((0.5, 0.5, 0.9, 0.9), ("zen", True), region_id="b")])

    def patch(action: str, regions: list[dict[str, Any]] | None, **data: Any) -> None:
        body = {"id": "shelf", "data": {**({"regions": regions} if regions is not None else {}), **data}}
        r = api.patch("/inputs", {"action": action, "inputs": [body]})
        assert r.status_code == 200, r.text

    # merge: by id, a new box and a concept added; by exact box, a value changed; a new region added
    patch("merge", [{"id": "a", "region_info": {"bounding_box": dict(zip(COORDINATES, (0.1, 0.1, 0.4, 0.4)))},
                     "data": {"concepts": [{"id": "zen", "value": False}]}},
                    region((0.5, 0.5, 0.9, 0.9), ("zen", False)),
                    region((0.0, 0.6, 0.2, 0.8), ("acme", True), region_id="c")])
    assert stored(api, "shelf") == [("a", (0.1, 0.1, 0.4, 0.4), {"acme": 1.0, "zen": 0.0}),
                                    ("b", (0.5, 0.5, 0.9, 0.9), {"zen": 0.0}),
                                    ("c", (0.0, 0.6, 0.2, 0.8), {"acme": 1.0})]
    patch("merge", [region((0.5, 0.5, 0.9, 0.9), ("zen", False))])  # the same again changes nothing
    assert len(stored(api, "shelf")) == 3

    # remove: one concept of a region, a whole region by id, an unknown region (ignored)
    patch("remove", [{"id": "a", "data": {"concepts": [{"id": "zen"}]}}, {"id": "b"}, {"id": "nope"}])
    assert stored(api, "shelf") == [("a", (0.1, 0.1, 0.4, 0.4), {"acme": 1.0}),
                                    ("c", (0.0, 0.6, 0.2, 0.8), {"acme": 1.0})]

    # overwrite without regions in the body keeps them; with them, they are exactly those given
    patch("overwrite", None, metadata={"k": 1})
    assert len(stored(api, "shelf")) == 2
    patch("overwrite", [region((0.2, 0.2, 0.6, 0.6), ("zen", True), region_id="z")])
    assert stored(api, "shelf") == [("z", (0.2, 0.2, 0.6, 0.6), {"zen": 1.0})]
    patch("overwrite", [])
    assert stored(api, "shelf") == []


@pytest.mark.parametrize(("bad", "field", "words"), [
    ({"region_info": {"bounding_box": {"top_row": 0.5, "left_col": 0.1, "bottom_row": 0.2, "right_col": 0.4}},
      "data": {"concepts": [{"id": "acme"}]}}, "inputs[0].data.regions[0].region_info.bounding_box", "top_row"),
    ({"region_info": {"bounding_box": {"top_row": 0.1, "left_col": 0.1, "bottom_row": 1.5, "right_col": 0.4}},
      "data": {"concepts": [{"id": "acme"}]}}, "inputs[0].data.regions[0].region_info.bounding_box.bottom_row", "[0, 1]"),
    ({"region_info": {"bounding_box": {"top_row": "x", "bottom_row": 0.5, "right_col": 0.4}},
      "data": {"concepts": [{"id": "acme"}]}}, "inputs[0].data.regions[0].region_info.bounding_box.top_row", "number"),
    ({"data": {"concepts": [{"id": "acme"}]}}, "inputs[0].data.regions[0].region_info.bounding_box", "bounding_box"),
    (region((0.1, 0.1, 0.5, 0.5)), "inputs[0].data.regions[0].data.concepts", "at least one concept"),
    (region((0.1, 0.1, 0.5, 0.5), ("acme", 0.7)), "inputs[0].data.regions[0].data.concepts[0].value", "true/false"),
    (region((0.1, 0.1, 0.5, 0.5), ("a/b", True)), "inputs[0].data.regions[0].data.concepts[0].id", "slashes"),
    (region((0.1, 0.1, 0.5, 0.5), ("acme", True), region_id="no spaces"), "inputs[0].data.regions[0].id", "letters"),
    ({**region((0.1, 0.1, 0.5, 0.5), ("acme", True)),
      "region_info": {"bounding_box": dict(zip(COORDINATES, (0.1, 0.1, 0.5, 0.5))), "feedback": "not_detected"}},
     "inputs[0].data.regions[0].region_info.feedback", "annotation"),
])
def test_a_bad_region_is_refused_naming_the_field(api: Api, bad: dict[str, Any], field: str, words: str) -> None:
    r = add(api, "x", [bad])
    assert r.status_code == 400, r.text
    st = r.json()["status"]
    assert st["code"] == 11102 and st["details"].startswith(field) and words in st["details"], st
    assert api.get("/inputs/x").status_code == 404  # nothing half-written


def test_a_bad_region_in_a_patch_changes_nothing(api: Api) -> None:
    add(api, "shelf", [region((0.1, 0.1, 0.3, 0.3), ("acme", True), region_id="a")])
    r = api.patch("/inputs", {"action": "merge", "inputs": [{"id": "shelf", "data": {"regions": [
        region((0.2, 0.2, 0.4, 0.4), ("zen", True)), {"id": "ghost", "data": {"concepts": [{"id": "zen"}]}}]}}]})
    assert r.status_code == 400 and r.json()["status"]["code"] == 11102, r.text
    assert r.json()["status"]["details"].startswith("inputs[0].data.regions[1].region_info.bounding_box: this input "
                                                    "has no region 'ghost'")
    assert stored(api, "shelf") == [("a", (0.1, 0.1, 0.3, 0.3), {"acme": 1.0})]


def test_deleting_an_input_deletes_its_regions(api: Api) -> None:
    add(api, "shelf", [region((0.1, 0.1, 0.3, 0.3), ("acme", True), region_id="a")])
    assert api.delete("/inputs/shelf").status_code == 200
    add(api, "shelf", [])
    assert stored(api, "shelf") == []
