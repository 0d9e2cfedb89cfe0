"""Datasets for learning, read from the store: votes, resolved labels, features and base scores.

Labels are never stored: they are rebuilt from the append-only feedback log (plus the app's
own annotations) every time, so erasing an end user's feedback erases their influence on the
next version.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from visionloop.inference.catalog import CUSTOM
from visionloop.inference.concepts import load_imagenet_concepts
from visionloop.learning.events import concept_votes as event_concept_votes
from visionloop.learning.labels import Aggregation, Label, Vote, aggregate
from visionloop.learning.vocabulary import EventType
from visionloop.services.models import chosen_concepts
from visionloop.services.predict import EMBEDDING_SPACE, features_from_bytes
from visionloop.services.training.click_votes import click_votes, general_concepts
from visionloop.store.tables import Concept, Embedding, FeedbackEvent, Input, InputConcept, Model, input_has_image

APP_ANNOTATOR = "app:annotations"   # the app's own input annotations vote as one trusted end user
EQUAL_WEIGHTS_PRIOR = (1e6, 2.5e5)  # reliability pinned at 0.8 for everyone: a plain majority vote


@dataclasses.dataclass(frozen=True)
class ConceptData:
    """Resolved labels of (image digest, concept) items with what they were resolved from."""

    aggregation: Aggregation
    names: dict[str, str]  # concept id -> name
    n_events: int
    last_seq: int
    first_seq: dict[str, int]  # image digest -> the first feedback event that labelled it (0: an annotation)

    @property
    def labels(self) -> list[Label]:
        return list(self.aggregation.labels.values())

    @property
    def digests(self) -> list[str]:
        return sorted({lab.item[0] for lab in self.labels})


def concept_votes(s: Session, app_id: str, model: Model
                  ) -> tuple[list[Vote], dict[str, str], int, int, dict[str, int]]:
    """Votes from concept feedback on this model's outputs, from the app's annotations and, for the
    general model, weak votes from clicks on one-concept searches. An app's own model learns only
    the concepts it was created with. Also: concept names, events read, the newest event's seq and,
    per image, the seq of the first event that labelled it (0 for annotations and clicks: a version
    trained at any time may have seen them)."""
    chosen = {cid for cid, _ in chosen_concepts(model)} if model.runtime == CUSTOM else None
    votes: list[Vote] = []
    names: dict[str, str] = {}
    n_events, last_seq = 0, 0
    first_seq: dict[str, int] = {}
    events = s.execute(select(FeedbackEvent.seq, FeedbackEvent.end_user_id, FeedbackEvent.body)
                       .where(FeedbackEvent.app_id == app_id, FeedbackEvent.model_pk == model.pk,
                              FeedbackEvent.event_type == EventType.ANNOTATION)
                       .order_by(FeedbackEvent.seq))
    for seq, end_user, body in events:
        normalized = (body or {}).get("normalized", {})
        event_votes = [v for v in event_concept_votes(normalized, end_user or None)
                       if chosen is None or v.item[1] in chosen]
        if not event_votes:
            continue
        n_events += 1
        last_seq = max(last_seq, seq)
        votes += event_votes
        for v in event_votes:
            first_seq.setdefault(v.item[0], seq)
        for c in normalized.get("concepts") or []:
            names.setdefault(c["id"], c.get("name") or c["id"])
    annotations = (select(Input.digest, InputConcept.concept_id, InputConcept.value)
                   .join(Input, (Input.app_id == InputConcept.app_id) & (Input.id == InputConcept.input_id))
                   .where(InputConcept.app_id == app_id, input_has_image()))
    if chosen is not None:
        annotations = annotations.where(InputConcept.concept_id.in_(chosen))
    for digest, concept_id, value in s.execute(annotations):
        votes.append(Vote((digest, concept_id), APP_ANNOTATOR, value >= 0.5))
        names.setdefault(concept_id, concept_id)
        first_seq[digest] = 0
    if model.runtime == "general":  # clicks on one-concept searches: weak votes (click_votes.py)
        weak, weak_names = click_votes(s, app_id, general_concepts(s, app_id))
        votes += weak
        first_seq.update({v.item[0]: 0 for v in weak})
        for concept_id, name in weak_names.items():
            names.setdefault(concept_id, name)
    app_names = dict(s.execute(select(Concept.id, Concept.name).where(Concept.app_id == app_id,
                                                                      Concept.id.in_(list(names)))).all())
    names.update(app_names)
    if model.runtime != CUSTOM:  # the base model's own concepts by their readable names
        vocabulary = load_imagenet_concepts()
        for cid, name in names.items():
            if name == cid:
                with contextlib.suppress(KeyError):
                    names[cid] = vocabulary.concepts[vocabulary.index(cid)].name
    return votes, names, n_events, last_seq, first_seq


def concept_data(s: Session, app_id: str, model: Model, *, reliability: bool = True) -> ConceptData:
    votes, names, n_events, last_seq, first_seq = concept_votes(s, app_id, model)
    agg = aggregate(votes) if reliability else aggregate(votes, prior=EQUAL_WEIGHTS_PRIOR,
                                                         anonymous_reliability=0.8)
    return ConceptData(agg, names, n_events, last_seq, first_seq)


def display(concept_id: str, names: Mapping[str, str]) -> str:
    """How a concept is shown to people: its name, with its id where the two differ (``cat (n02121808)``)."""
    name = names.get(concept_id) or concept_id
    return concept_id if name == concept_id else f"{name} ({concept_id})"


def features(s: Session, digests: Sequence[str]) -> dict[str, np.ndarray]:
    """Stored raw backbone features by image digest (images never predicted on are absent, and so are
    those nothing needed any more: :mod:`visionloop.services.embedding_gc`)."""
    out: dict[str, np.ndarray] = {}
    for start in range(0, len(digests), 500):
        chunk = list(digests[start:start + 500])
        for digest, vector in s.execute(select(Embedding.digest, Embedding.vector)
                                        .where(Embedding.space == EMBEDDING_SPACE, Embedding.digest.in_(chunk))):
            out[digest] = features_from_bytes(vector)
    return out


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def stack(vectors: dict[str, np.ndarray], keys: Iterable[str]) -> np.ndarray:
    return np.stack([vectors[k] for k in keys]).astype(np.float32)
