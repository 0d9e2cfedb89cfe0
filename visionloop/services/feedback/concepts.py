"""Which concept a feedback statement is about.

A reference (the ``id`` sent, else the ``name``) is looked up, first match wins:

1. an id of the model version's concepts (``n02084071``);
2. an id of the app's concepts;
3. a name of the model version's concepts, case-insensitively (``dog`` -> ``n02084071``);
4. a name of the app's concepts, case-insensitively;
5. otherwise it is a new app concept (``laborador_retriever``, ``猫``) with that id, created in the
   same transaction as the feedback event, so the app can learn it. Its id must be a valid concept
   id, as for ``POST /v2/concepts``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select, union_all

from visionloop.ids import is_valid_concept_id
from visionloop.learning.vocabulary import NormalizedConcept
from visionloop.services.feedback.parse import ConceptIn, invalid
from visionloop.services.models import ModelService, ModelView, chosen_concepts
from visionloop.store.prepared import PreparedIn, slots
from visionloop.store.tables import Concept, name_key

MODEL, APP, NEW = "model", "app", "new"

# The app's concepts a request may name, by id or by name (compared by name_key), prepared once per
# number of references (visionloop/store/prepared.py). Two lookups in a UNION ALL, each on its own
# index (the primary key; ix_concepts_app_name_key): with an OR the database read every concept of the app.
_COLUMNS = (Concept.id, Concept.name, Concept.created_at)
_APP_CONCEPTS = PreparedIn(lambda n: union_all(
    select(*_COLUMNS).where(Concept.app_id == bindparam("app_id"), Concept.id.in_(slots("id", n))),
    select(*_COLUMNS).where(Concept.app_id == bindparam("app_id"), Concept.name_key.in_(slots("name", n)))))


def _app_concepts(conn: Connection, app_id: str, refs: Sequence[str]) -> list[Any]:
    """The app's concepts whose id is one of ``refs`` or whose name is one, case-insensitively."""
    rows = _APP_CONCEPTS.all(conn, {"app_id": app_id}, id=refs, name=[name_key(r) for r in refs])
    return list({r.id: r for r in rows}.values())


@dataclasses.dataclass(frozen=True)
class Resolved:
    id: str
    name: str
    present: bool
    source: str  # MODEL, APP or NEW

    def as_json(self) -> NormalizedConcept:
        return {"id": self.id, "name": self.name, "value": 1.0 if self.present else 0.0, "source": self.source}


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    by_id: dict[str, str]    # id -> name
    by_name: dict[str, str]  # name_key(name) -> id (the first concept with that name)


class ConceptResolver:
    def __init__(self, models: ModelService) -> None:
        self.models = models
        # by version and the app's chosen concepts: a version is immutable, but a model not trained
        # yet keeps its version when a patch changes its concepts (here or in another process)
        self._vocabularies: dict[tuple[str, tuple[tuple[str, str], ...]], Vocabulary] = {}

    def vocabulary(self, view: ModelView) -> Vocabulary:
        key = (view.version.id, tuple(chosen_concepts(view.model)))
        vocab = self._vocabularies.get(key)
        if vocab is None:
            pairs = self.models.concepts_of(view)
            by_name: dict[str, str] = {}
            for cid, name in pairs:
                by_name.setdefault(name_key(name), cid)
            vocab = self._vocabularies[key] = Vocabulary(dict(pairs), by_name)
        return vocab

    def resolve(self, conn: Connection, app_id: str, view: ModelView, concepts: Sequence[ConceptIn]) -> list[Resolved]:
        """Resolve every statement; two references to one concept must agree on its value."""
        if not concepts:
            return []
        vocab = self.vocabulary(view)
        refs = {c.ref for c in concepts}
        rows = [] if refs <= vocab.by_id.keys() else _app_concepts(conn, app_id, sorted(refs))  # rule 1 first
        app_by_id = {r.id: r.name for r in rows}
        app_by_name: dict[str, str] = {}
        for r in sorted(rows, key=lambda r: (r.created_at, r.id)):
            app_by_name.setdefault(name_key(r.name), r.id)

        out: list[Resolved] = []
        seen: dict[str, tuple[Resolved, ConceptIn]] = {}
        named: dict[str, tuple[Resolved, ConceptIn]] = {}  # by name_key: an app's 'cat' and the model's 'cat'
        for c in concepts:
            resolved = self._one(c, vocab, app_by_id, app_by_name)
            before = seen.get(resolved.id)
            if before is not None:
                if before[0].present != resolved.present:
                    raise invalid(c.field, f"{c.ref!r} is concept {resolved.id!r}, also given in {before[1].field} "
                                           "with the opposite value")
                continue
            namesake = named.setdefault(name_key(resolved.name), (resolved, c))
            if namesake[0].present != resolved.present:
                raise invalid(c.field, f"{c.ref!r} (concept {resolved.id!r}) is named {resolved.name!r}, as is "
                                       f"{namesake[1].field} (concept {namesake[0].id!r}), which has the opposite "
                                       "value: one body cannot say both")
            seen[resolved.id] = (resolved, c)
            out.append(resolved)
        return out

    @staticmethod
    def _one(c: ConceptIn, vocab: Vocabulary, app_by_id: dict[str, str], app_by_name: dict[str, str]) -> Resolved:
        ref, key = c.ref, name_key(c.ref)
        if ref in vocab.by_id:
            return Resolved(ref, vocab.by_id[ref], c.present, MODEL)
        if ref in app_by_id:
            return Resolved(ref, app_by_id[ref], c.present, APP)
        if key in vocab.by_name:
            cid = vocab.by_name[key]
            return Resolved(cid, vocab.by_id[cid], c.present, MODEL)
        if key in app_by_name:
            cid = app_by_name[key]
            return Resolved(cid, app_by_id[cid], c.present, APP)
        if not is_valid_concept_id(ref):  # the rule of POST /v2/concepts
            field = f"{c.field}.name" if c.name == ref else f"{c.field}.id"
            raise invalid(field, f"{ref[:70]!r} is not a concept of this model or app, and cannot be the id of a "
                                 "new one (1-64 printable characters, no '/' or '\\', not only spaces)")
        return Resolved(ref, c.name or ref, c.present, NEW)
