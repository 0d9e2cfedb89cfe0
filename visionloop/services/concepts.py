"""App concepts: create, read, rename and search by name (``*`` wildcard)."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from visionloop import errors
from visionloop.ids import is_valid_concept_id
from visionloop.services.paging import Page
from visionloop.store.db import Database, insert_missing
from visionloop.store.tables import Concept, name_key, utcnow


@dataclasses.dataclass(frozen=True)
class NewConcept:
    id: str
    name: str | None = None
    language: str | None = None


def check_concept_id(concept_id: str, field: str) -> None:
    if not is_valid_concept_id(concept_id):
        raise errors.InvalidRequest(f"{field}: concept id {concept_id!r} must be 1-64 printable characters "
                                    "without slashes")


NAME_MAX = 255     # the columns' widths (PostgreSQL enforces them; SQLite does not, so check here)
LANGUAGE_MAX = 16


def check_concept_text(value: str | None, field: str, limit: int) -> None:
    """A name or language: at most ``limit`` characters, no NUL (which PostgreSQL cannot store)."""
    if value is None:
        return
    if len(value) > limit:
        raise errors.InvalidRequest(f"{field}: at most {limit} characters, got {len(value)}")
    if "\x00" in value:
        raise errors.InvalidRequest(f"{field}: must not contain NUL characters")


def ensure_concepts(s: Session, app_id: str, concept_ids: Sequence[str], names: Mapping[str, str] | None = None
                    ) -> None:
    """Create the concepts an annotation (or a new model) names when the app does not have them yet
    (name from ``names``, else the id); requests racing to create the same concept both succeed
    (several writers on PostgreSQL). Existing concepts keep their names."""
    missing = set(concept_ids)
    if not missing:
        return
    existing = set(s.scalars(select(Concept.id).where(Concept.app_id == app_id, Concept.id.in_(missing))))
    now = utcnow()
    names = names or {}
    insert_missing(s, Concept, [{"app_id": app_id, "id": cid, "name": names.get(cid, cid), "created_at": now,
                                 "modified_at": now} for cid in sorted(missing - existing)], key=("app_id", "id"))


class ConceptService:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, app_id: str, concepts: Sequence[NewConcept]) -> list[Concept]:
        """Create all or none: a duplicate id (in the batch or the app) refuses the whole request."""
        if not concepts:
            raise errors.InvalidRequest("concepts: at least one concept is required")
        seen: set[str] = set()
        for i, c in enumerate(concepts):
            check_concept_id(c.id, f"concepts[{i}].id")
            check_concept_text(c.name, f"concepts[{i}].name", NAME_MAX)
            check_concept_text(c.language, f"concepts[{i}].language", LANGUAGE_MAX)
            if c.id in seen:
                raise errors.ConceptInvalid(f"concepts[{i}].id: {c.id!r} appears twice in the request")
            seen.add(c.id)
        try:
            with self.db.transaction() as s:
                taken = set(s.scalars(select(Concept.id).where(Concept.app_id == app_id, Concept.id.in_(seen))))
                if taken:
                    raise errors.ConceptInvalid(f"concepts already exist: {', '.join(sorted(taken))}",
                                                description="Concept already exists")
                rows = [Concept(app_id=app_id, id=c.id, name=c.name or c.id, language=c.language)
                        for c in concepts]
                s.add_all(rows)
        except IntegrityError:  # a concurrent request created one of them first
            raise errors.ConceptInvalid("concepts already exist (created meanwhile by another request)",
                                        description="Concept already exists") from None
        return rows

    def get(self, app_id: str, concept_id: str) -> Concept:
        with self.db.session() as s:
            row = s.get(Concept, (app_id, concept_id))
        if row is None:
            raise errors.ConceptNotFound(f"concept {concept_id!r} does not exist in this app")
        return row

    def list(self, app_id: str, page: Page) -> list[Concept]:
        with self.db.session() as s:
            q = (select(Concept).where(Concept.app_id == app_id).order_by(Concept.created_at, Concept.id)
                 .offset(page.offset).limit(page.per_page))
            return list(s.scalars(q))

    def rename(self, app_id: str, updates: Sequence[NewConcept]) -> builtins.list[Concept]:
        """Overwrite names (the only mutable field); unknown ids refuse the whole request."""
        if not updates:
            raise errors.InvalidRequest("concepts: at least one concept is required")
        with self.db.transaction() as s:
            rows = []
            for i, u in enumerate(updates):
                check_concept_text(u.name, f"concepts[{i}].name", NAME_MAX)
                check_concept_text(u.language, f"concepts[{i}].language", LANGUAGE_MAX)
                row = s.get(Concept, (app_id, u.id)) if is_valid_concept_id(u.id) else None
                if row is None:
                    raise errors.ConceptNotFound(f"concepts[{i}].id: concept {u.id!r} does not exist in this app")
                if u.name:
                    row.name, row.name_key = u.name, name_key(u.name)
                if u.language:
                    row.language = u.language
                row.modified_at = utcnow()
                rows.append(row)
        return rows

    def search(self, app_id: str, name: str, page: Page) -> builtins.list[Concept]:
        """Case-insensitive name match; ``*`` matches any run of characters."""
        if not name:
            raise errors.InvalidRequest("concept_query.name: a name (with optional * wildcards) is required")
        check_concept_text(name, "concept_query.name", NAME_MAX)
        escaped = name_key(name).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_").replace("*", "%")
        with self.db.session() as s:
            q = (select(Concept).where(Concept.app_id == app_id, Concept.name_key.like(escaped, escape="\\"))
                 .order_by(Concept.name, Concept.id).offset(page.offset).limit(page.per_page))
            return list(s.scalars(q))
