"""/concepts: create, list, read, rename, search by name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from visionloop import errors
from visionloop.http import wire
from visionloop.http.deps import ConceptsCaller, CoreDep, PageDep
from visionloop.http.schemas import ConceptIn, ConceptSearchRequest, ConceptsRequest
from visionloop.http.strict_json import StrictJSONRoute
from visionloop.services.concepts import NewConcept
from visionloop.services.paging import Page

router = APIRouter(tags=["concepts"], route_class=StrictJSONRoute)


def _new_concepts(concepts: list[ConceptIn]) -> list[NewConcept]:
    out = []
    for i, c in enumerate(concepts):
        if not c.id:
            raise errors.InvalidRequest(f"concepts[{i}].id: a concept id is required")
        out.append(NewConcept(id=c.id, name=c.name, language=c.language))
    return out


@router.post("/concepts")
def post_concepts(body: ConceptsRequest, caller: ConceptsCaller, core: CoreDep) -> dict[str, Any]:
    rows = core.concepts.create(caller.app_id, _new_concepts(body.concepts))
    return wire.ok(concepts=[wire.concept(r) for r in rows])


@router.get("/concepts")
def list_concepts(caller: ConceptsCaller, core: CoreDep, page: PageDep) -> dict[str, Any]:
    return wire.ok(concepts=[wire.concept(r) for r in core.concepts.list(caller.app_id, page)])


@router.get("/concepts/{concept_id}")
def get_concept(concept_id: str, caller: ConceptsCaller, core: CoreDep) -> dict[str, Any]:
    return wire.ok(concept=wire.concept(core.concepts.get(caller.app_id, concept_id)))


@router.patch("/concepts")
def patch_concepts(body: ConceptsRequest, caller: ConceptsCaller, core: CoreDep) -> dict[str, Any]:
    if (body.action or "overwrite") != "overwrite":
        raise errors.InvalidRequest(f"action: only 'overwrite' is supported for concepts, got {body.action!r}")
    rows = core.concepts.rename(caller.app_id, _new_concepts(body.concepts))
    return wire.ok(concepts=[wire.concept(r) for r in rows])


@router.post("/concepts/searches")
def search_concepts(body: ConceptSearchRequest, caller: ConceptsCaller, core: CoreDep,
                    page: PageDep) -> dict[str, Any]:
    if body.pagination is not None and (body.pagination.page or body.pagination.per_page):
        page = Page.of(body.pagination.page, body.pagination.per_page, default=page.per_page,
                       cap=core.settings.max_per_page)
    """The app's concepts, then the built-in models' (``dog*``: 'dog', 'dogsled', ...), by name."""
    name = body.concept_query.name or ""
    found = [wire.concept(r) for r in core.concepts.search(caller.app_id, name, Page(1, page.offset + page.per_page))]
    ids = {c["id"] for c in found}
    for view, cid, cname in core.models.concept_matches(caller.app_id, name):
        if cid not in ids:
            found += wire.concept_list(view, [(cid, cname)], "main")
    return wire.ok(concepts=found[page.offset:page.offset + page.per_page])
