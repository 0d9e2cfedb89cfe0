"""Signing in to the console the way a browser does, and model versions made without training."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from fastapi.testclient import TestClient

from visionloop import status
from visionloop.core import VisionLoop
from visionloop.ids import new_id
from visionloop.store.tables import ModelVersion, utcnow

GENERAL = "aaa03c23b3724a16a56b629203edc62c"
FACE = "a403429f2ddf4b49b307e318f00e528b"


def form_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html[-2000:]
    return found.group(1)


def charts_of(html: str) -> dict[str, dict[str, Any]]:
    """The uPlot chart specs a page embeds, by the id of their holder."""
    found = re.findall(r'<div class="chart" id="([^"]+)"><script type="application/json">(.*?)</script></div>', html)
    return {chart_id: json.loads(spec) for chart_id, spec in found}


def sign_in(client: TestClient, key: str) -> None:
    token = form_token(client.get("/console/login").text)
    r = client.post("/console/login", data={"api_key": key, "csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303, r.text


def page_token(client: TestClient) -> str:
    """The signed-in session's CSRF token, as every console page's forms carry it."""
    return form_token(client.get("/console").text)


def trained_versions(core: VisionLoop, app_id: str, model_id: str, n: int) -> list[str]:
    """``n`` trained versions of a model for an app, oldest first, the newest made active (as
    promotion would): rows only, for pages and buttons that never predict with them."""
    view = core.models.get(app_id, model_id)
    ids = [new_id() for _ in range(n)]
    start = utcnow()  # after the built-in base versions, seeded when the VisionLoop started
    with core.db.transaction() as s:
        for i, vid in enumerate(ids):
            s.add(ModelVersion(id=vid, model_pk=view.model.pk, app_id=app_id, parent_id=view.version.id,
                               status_code=status.MODEL_TRAINED, created_at=start + dt.timedelta(milliseconds=i),
                               params={"kind": "base", "decision": f"promoted: test version {i}"}))
    core.models.set_active(app_id, view.model, ids[-1])
    return ids
