"""Search learning through HTTP: a click model trained from real searches and clicks re-ranks visual search.

The app's users want black-and-white photos: searching by a photo, they click the grey versions
of the same scene, wherever the similarity ranking put them. Visual similarity alone ranks colour
and grey versions of a scene together; once enough searches were clicked, a ``click_model``
version of the embedding model learns the preference and puts the grey ones first — on query
photos it never saw — for this app only.
"""

from __future__ import annotations

import io
import random
from typing import Any

import numpy as np
import pytest
from PIL import ImageOps

from tests.helpers import Api, b64, scene, train
from visionloop.core import VisionLoop
from visionloop.learning.labels import Label
from visionloop.services.training.data import concept_data

EMBED = "bbb5f41425b8468d9b7a554ff10f8581"
EMBED_BASE = "bb186755eda04f9cbb6fe32e816be104"
GENERAL = "aaa03c23b3724a16a56b629203edc62c"
CAT = "n02121808"  # the general model's broader concept "cat"
SCENES = ("chelsea", "coffee", "rocket", "astronaut")


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """The trained click model alone: the click memory (tests/api/test_search_memory.py) is off."""
    return {"fetch_allow_hosts": "127.0.0.1", "search_memory_strength": 0}




def photo(name: str, grey: bool, seed: int) -> bytes:
    rng = random.Random(seed)
    base = scene(name)
    w, h = base.size
    cw, ch = int(w * rng.uniform(0.6, 0.95)), int(h * rng.uniform(0.6, 0.95))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = base.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        img = ImageOps.mirror(img)
    img = img.resize((160, 160))
    if grey:
        img = ImageOps.grayscale(img).convert("RGB")
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def add_photos(api: Api, per_kind: int) -> list[str]:
    items = [{"id": f"{name}-{'grey' if grey else 'colour'}-{k}",
              "data": {"image": {"base64": b64(photo(name, grey, 100 * SCENES.index(name) + 10 * grey + k))}}}
             for name in SCENES for grey in (False, True) for k in range(per_kind)]
    r = api.post("/inputs", {"inputs": items})
    assert r.status_code == 200, r.text
    return [it["id"] for it in items]


def search(api: Api, term: dict) -> dict:
    r = api.post("/searches", {"query": {"ands": [{"output": {"input": term}}]}, "pagination": {"per_page": 20}})
    assert r.status_code == 200, r.text
    return r.json()


def wanted(query_scene: str, hit_id: str) -> bool:
    """What these users click: grey photos of the scene they searched with."""
    return hit_id.startswith(f"{query_scene}-grey")


def click_sessions(api: Api, queries: list[str]) -> None:
    """Search by each stored photo; the user clicks the first one or two grey photos of its scene."""
    for n, query in enumerate(queries):
        result = search(api, {"id": query})
        scene_name = query.split("-")[0]
        hits = [h["input"]["id"] for h in result["hits"]]
        chosen = [h for h in hits if h != query and wanted(scene_name, h)][: 1 + n % 2]
        for hit in chosen:
            r = api.post("/searches/feedback", {"input": {"id": hit, "feedback_info": {
                "event_type": "search_click", "search_id": result["id"], "end_user_id": f"user-{n % 5}"}}})
            assert r.status_code == 200, r.text


def probe(api: Api) -> tuple[list[list[str]], float]:
    """Fresh query photos (never stored, never clicked): the hits, and the share of wanted ones in the top 4."""
    rankings, share = [], []
    for k, name in enumerate(SCENES * 2):
        hits = [h["input"]["id"] for h in search(api, {"data": {"image": {"base64": b64(photo(name, k >= 4, 900 + k))}}})["hits"]]
        rankings.append(hits)
        share.append(sum(wanted(name, h) for h in hits[:4]) / 4)
    return rankings, float(np.mean(share))




def test_click_model_reranks_only_after_enough_clicked_searches(api: Api, other_api: Api, core: VisionLoop) -> None:
    ids = add_photos(api, 4)
    add_photos(other_api, 1)
    before, share_before = probe(api)
    other_before, _ = probe(other_api)
    queries = [ids[(7 * n) % len(ids)] for n in range(76)]

    click_sessions(api, queries[:30])
    too_early = train(api, EMBED)
    assert too_early["status"]["code"] == 21117, too_early
    assert "fewer than 50" in too_early["status"]["details"]
    assert probe(api)[0] == before  # nothing re-ranks yet
    assert ("app-a", EMBED) not in core.learning.due(1)  # the worker waits for clicks it has not read

    click_sessions(api, queries[30:])
    assert ("app-a", EMBED) in core.learning.due(60)
    version = train(api, EMBED)
    assert version["status"]["code"] == 21100, version
    info = version["visionloop"]
    assert info["learned"]["reranking"] and info["learned"]["validation"]["z"] >= 1.64, info["learned"]
    assert info["trained_on"]["clicked_sessions"] >= 50 and info["trained_on"]["later_sessions"]["seen"] >= 10, info
    holdout = version["metrics"]["holdout"]["seen"]  # judged on later searches of the queries it learned from
    assert holdout["challenger"]["ips_dcg"]["value"] > holdout["champion"]["ips_dcg"]["value"], holdout
    assert info["promoted"] is True and "seen queries' ips_dcg rose" in info["decision"], info["decision"]
    assert api.get(f"/models/{EMBED}").json()["model"]["model_version"]["id"] == version["id"]

    after, share_after = probe(api)
    assert after != before
    assert share_after >= share_before + 0.25, (share_before, share_after)

    # another app's searches are untouched
    assert probe(other_api)[0] == other_before
    assert other_api.get(f"/models/{EMBED}").json()["model"]["model_version"]["id"] == EMBED_BASE

    # search metrics from the log: every search and click above, by query kind
    everything = api.get("/searches/metrics").json()["search_metrics"]
    metrics = everything["kinds"]
    # per ranking version: before and after the promotion; per day: all of today
    by_ranking = everything["by_ranking"]
    assert set(by_ranking) == {EMBED_BASE, version["id"]}, by_ranking
    searches = {ranking: m["visual"]["n_searches"] for ranking, m in by_ranking.items()}
    assert searches == {EMBED_BASE: 92, version["id"]: 8}
    assert list(everything["by_day"].values()) == [metrics]
    visual = metrics["visual"]
    assert visual["n_searches"] == 76 + 3 * 8 and visual["n_clicks"] == 76 + 38
    assert visual["ctr"]["value"] == 76 / 100 and 0 < visual["mrr"]["value"] <= 1
    assert visual["mean_clicked_rank"]["value"] >= 2  # rank 1 is the query photo itself
    live = api.get(f"/models/{EMBED}/versions/{version['id']}/metrics").json()["model_version"]["metrics"]["live"]
    assert live["kinds"]["visual"]["n_searches"] == visual["n_searches"]  # also as the embedding model's metrics

    # rollback is one call: cosine ranking again
    r = api.post(f"/models/{EMBED}/versions/{EMBED_BASE}/activate")
    assert r.status_code == 200, r.text
    assert probe(api)[0] == before


def test_clicks_on_a_concept_search_are_weak_concept_labels(api: Api, core: VisionLoop) -> None:
    r = api.post("/inputs", {"inputs": [{"id": "cat", "data": {"image": {"base64": b64(photo("chelsea", False, 1))}}}]})
    assert r.status_code == 200, r.text
    result = api.post("/searches", {"query": {"ands": [{"output": {"data": {"concepts": [{"name": "cat"}]}}}]}}).json()
    assert [h["input"]["id"] for h in result["hits"]][:1] == ["cat"]

    def label() -> Label | None:
        with core.db.session() as s:
            general = core.models.get("app-a", GENERAL).model
            labels = concept_data(s, "app-a", general).aggregation.labels
        return next((lab for (_, concept), lab in labels.items() if concept == CAT), None)

    def click(user: str) -> None:
        r = api.post("/searches/feedback", {"input": {"id": "cat", "feedback_info": {
            "event_type": "search_click", "search_id": result["id"], "end_user_id": user}}})
        assert r.status_code == 200, r.text

    click("u1")
    one = label()
    assert one is not None and one.value and one.confidence < 0.7  # too weak to train on alone
    for user in ("u2", "u3", "u4"):
        click(user)
    four = label()
    assert four is not None and four.value and four.confidence >= 0.7 and four.n_users == 4


def test_the_gate_refuses_a_ranking_that_hurts_new_queries(api: Api) -> None:
    """Users first click grey photos; later, searching with new photos, they click colour ones. A
    ranking learned from the earlier searches puts grey first: judged on the later searches of new
    queries, it is worse than the similarity ranking, and is refused for it."""
    ids = add_photos(api, 4)
    click_sessions(api, [ids[(7 * n) % len(ids)] for n in range(64)])
    for k in range(16):
        name = SCENES[k % len(SCENES)]
        result = search(api, {"data": {"image": {"base64": b64(photo(name, k % 2 == 0, 500 + k))}}})
        colour = [h["input"]["id"] for h in result["hits"] if h["input"]["id"].startswith(f"{name}-colour")][:2]
        for hit in colour:
            r = api.post("/searches/feedback", {"input": {"id": hit, "feedback_info": {
                "event_type": "search_click", "search_id": result["id"], "end_user_id": f"later-{k % 5}"}}})
            assert r.status_code == 200, r.text
    version = train(api, EMBED)
    info = version["visionloop"]
    assert info["learned"]["reranking"], info["learned"]
    assert info["trained_on"]["later_sessions"] == {"seen": 0, "unseen": 16}, info["trained_on"]
    assert info["promoted"] is False
    assert info["decision"].startswith("refused: unseen queries' ips_dcg fell by more than 1%"), info["decision"]
    assert api.get(f"/models/{EMBED}").json()["model"]["model_version"]["id"] == EMBED_BASE
