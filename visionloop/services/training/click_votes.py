"""Clicks as weak labels: a click on a hit of a one-concept search is a low-weight vote that the hit
shows that concept (:func:`~visionloop.learning.click_model.clicks_as_weak_labels`).

The votes join the concept feedback of the general model's training, ``((image digest, concept id),
end user, present, weight)``. At :data:`WEIGHT` one click cannot make a label on its own (a
resolved label needs confidence 0.7: four users clicking the same hit for the same concept make
one), and an explicit annotation outweighs it — people also click out of curiosity. A hit shown and not
clicked says nothing: it may never have been looked at. A click counts for the image the hit showed
(its digest, stored with the hit), never for another image stored later under the same input id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from visionloop.inference.concepts import load_imagenet_concepts
from visionloop.learning.click_model import Hit, SearchSession, clicks_as_weak_labels
from visionloop.learning.labels import Vote
from visionloop.learning.vocabulary import EventType
from visionloop.store.tables import Concept, FeedbackEvent, Input, Search, SearchHit

WEIGHT = 0.2


def concept_refs(raw: dict[str, Any]) -> list[str]:
    """The concepts a remembered search body asks to be present (annotated or predicted)."""
    refs = []
    for term in ((raw or {}).get("query") or {}).get("ands") or []:
        for side in ("input", "output"):
            data = ((term or {}).get(side) or {}).get("data") or {}
            for c in data.get("concepts") or []:
                value = (c or {}).get("value")
                present = value is None or (isinstance(value, int | float) and value >= 0.5)  # True >= 0.5 too
                if present and (c.get("id") or c.get("name")):
                    refs.append(str(c.get("id") or c.get("name")))
    return refs


Resolve = Callable[[str], tuple[str, str] | None]  # a searched concept -> (id, name), None if unknown


def general_concepts(s: Session, app_id: str) -> Resolve:
    """Resolve a searched concept (id, else name) among the app's concepts, then the general model's."""
    app = dict(s.execute(select(Concept.id, Concept.name).where(Concept.app_id == app_id)).all())
    app_by_name = {name: cid for cid, name in reversed(list(app.items()))}
    vocab = {c.id: c.name for c in load_imagenet_concepts().concepts}
    vocab_by_name = {c.name: c.id for c in reversed(load_imagenet_concepts().concepts)}  # the first one wins

    def resolve(ref: str) -> tuple[str, str] | None:
        for known, by_name in ((app, app_by_name), (vocab, vocab_by_name)):
            cid = ref if ref in known else by_name.get(ref)
            if cid is not None:
                return cid, known[cid]
        return None

    return resolve


def click_votes(s: Session, app_id: str, resolve: Resolve, *, weight: float = WEIGHT
                ) -> tuple[list[Vote], dict[str, str]]:
    """Weak positive votes from clicks on the hits of the app's one-concept searches, and the names
    of the concepts they are about."""
    names: dict[str, str] = {}
    clicks: dict[str, dict[str | None, list[int]]] = {}
    for sid, rank, end_user in s.execute(select(FeedbackEvent.search_id, FeedbackEvent.rank, FeedbackEvent.end_user_id)
                                         .where(FeedbackEvent.app_id == app_id,
                                                FeedbackEvent.event_type == EventType.SEARCH_CLICK,
                                                FeedbackEvent.rank.is_not(None)).order_by(FeedbackEvent.seq)):
        clicks.setdefault(sid, {}).setdefault(end_user, []).append(rank)
    sessions: list[SearchSession] = []
    ids = list(clicks)
    for start in range(0, len(ids), 200):
        searches = s.execute(select(Search.id, Search.query).where(Search.id.in_(ids[start:start + 200]),
                                                                   Search.kind.not_like("%visual%"))).all()
        for sid, raw in searches:
            refs = concept_refs(raw)
            resolved = resolve(refs[0]) if len(refs) == 1 else None
            if resolved is None:
                continue
            concept, names[concept] = resolved
            last = max(r for ranks in clicks[sid].values() for r in ranks)
            # the image shown; a hit remembered before digests were (migration 0013): the input's now
            shown = dict(s.execute(select(SearchHit.rank, func.coalesce(SearchHit.digest, Input.digest))
                                   .outerjoin(Input, (Input.app_id == app_id) & (Input.id == SearchHit.input_id))
                                   .where(SearchHit.search_id == sid, SearchHit.rank <= last)).all())
            hits = [Hit(shown.get(r) or "", 0.0) for r in range(1, last + 1)]
            sessions += [SearchSession(sid, "concept", concept, hits, ranks, end_user=user)
                         for user, ranks in clicks[sid].items()]
    votes = clicks_as_weak_labels(sessions, weight=weight, kinds=("concept",))  # hits are the images' digests
    return [v for v in votes if v.item[0]], names
