"""/models: the model registry (filled by the bundled models)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from visionloop.http import wire
from visionloop.http.deps import ModelsCaller, PageDep

router = APIRouter(tags=["models"])


@router.get("/models")
def list_models(caller: ModelsCaller, page: PageDep) -> dict[str, Any]:
    return wire.ok(models=[])
