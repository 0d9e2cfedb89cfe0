"""The database schema (SQLAlchemy 2, portable across SQLite and PostgreSQL).

Alembic migrations under ``migrations/`` create exactly these tables; a test checks that the
migrated schema matches this metadata. Feedback events are append-only: rows are inserted,
never updated; labels and metrics are derived from them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    and_,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from visionloop.store.blobs import digest_of


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def name_key(name: str) -> str:
    """How concept names compare: case-insensitively in every script (``str.casefold``: "Straße"
    is "STRASSE"), alike on every backend, where SQL's lower() folds only A-Z on SQLite and
    depends on the locale on PostgreSQL."""
    return name.casefold()


def _name_key_of_row(context: Any) -> str:
    return name_key(context.get_current_parameters()["name"])


def url_key(url: str) -> str:
    """What inputs are looked up by URL with: the URL's SHA-256, a bounded index key whatever the
    URL's length (a B-tree entry on PostgreSQL holds at most ~2.7 kB)."""
    return digest_of(url.encode())


def _url_key_of_row(context: Any) -> str | None:
    url = context.get_current_parameters().get("url")
    return url_key(url) if url is not None else None


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


ID = String(64)


class App(Base):
    __tablename__ = "apps"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Bumped by every transaction that adds or deletes inputs: a process's visual index of the app
    # is current while its generation matches (store/app_indexes.py).
    inputs_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(128), unique=True)
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(255), default="")
    monthly_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Concept(Base):
    __tablename__ = "concepts"
    # Feedback names concepts by name on every request: without the index that lookup read every
    # concept of the app, a cost growing with the app's concepts.
    __table_args__ = (Index("ix_concepts_app_name_key", "app_id", "name_key"),)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    # name_key(name), set on insert; a rename sets it too. Text: casefolding can lengthen a name.
    name_key: Mapped[str | None] = mapped_column(Text, nullable=True, default=_name_key_of_row)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Input(Base):
    __tablename__ = "inputs"
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    # None, and width and height too, for an input whose URL could not be fetched or decoded: it is
    # kept (status_code INPUT_FAILED, the cause in status_details) as Clarifai kept it, and every
    # reader of images (search, the vector index, training, click learning) passes it by.
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    url: Mapped[str | None] = mapped_column(Text, nullable=True)
    url_key: Mapped[str | None] = mapped_column(String(64), nullable=True, default=_url_key_of_row)  # url_key(url)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    geo_latitude: Mapped[float | None] = mapped_column(Float, nullable=True)  # data.geo.geo_point, degrees
    geo_longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    status_code: Mapped[int] = mapped_column(Integer)
    status_details: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    modified_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (Index("ix_inputs_app_created", "app_id", "created_at", "id"),
                      Index("ix_inputs_app_latitude", "app_id", "geo_latitude"),
                      # adding an input by URL checks for one with that URL: without it, a scan of the app
                      Index("ix_inputs_app_url_key", "app_id", "url_key"))



def input_at_url(url: str) -> Any:
    """The condition "this input has this URL", on the (app_id, url_key) index."""
    return and_(Input.url_key == url_key(url), Input.url == url)


def input_has_image() -> Any:
    """The condition "this input's image is stored": not one whose download failed."""
    return Input.digest.is_not(None)


class InputConcept(Base):
    """An annotation: the app says concept ``concept_id`` is present (1) or absent (0) on an input."""

    __tablename__ = "input_concepts"
    app_id: Mapped[str] = mapped_column(ID, primary_key=True)
    input_id: Mapped[str] = mapped_column(ID, primary_key=True)
    concept_id: Mapped[str] = mapped_column(ID, primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    __table_args__ = (
        ForeignKeyConstraint(["app_id", "input_id"], ["inputs.app_id", "inputs.id"], ondelete="CASCADE"),
        ForeignKeyConstraint(["app_id", "concept_id"], ["concepts.app_id", "concepts.id"]),
        Index("ix_input_concepts_concept", "app_id", "concept_id"),
    )


class InputRegion(Base):
    """An annotated region of an input: a box (fractions of the image) and the concepts the app says
    it shows (value 1) or does not show (0), as ``[{"id", "value"}]``; ``position`` keeps the order
    given. Detection models learn from them (:mod:`visionloop.services.training.detection_learning`)."""

    __tablename__ = "input_regions"
    app_id: Mapped[str] = mapped_column(ID, primary_key=True)
    input_id: Mapped[str] = mapped_column(ID, primary_key=True)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    top_row: Mapped[float] = mapped_column(Float)
    left_col: Mapped[float] = mapped_column(Float)
    bottom_row: Mapped[float] = mapped_column(Float)
    right_col: Mapped[float] = mapped_column(Float)
    concepts: Mapped[list[Any]] = mapped_column(JSON)
    __table_args__ = (
        ForeignKeyConstraint(["app_id", "input_id"], ["inputs.app_id", "inputs.id"], ondelete="CASCADE"),
    )


class InputConceptScore(Base):
    """What the general model predicted for an input when it was added: searchable by concept."""

    __tablename__ = "input_concept_scores"
    app_id: Mapped[str] = mapped_column(ID, primary_key=True)
    input_id: Mapped[str] = mapped_column(ID, primary_key=True)
    concept_id: Mapped[str] = mapped_column(ID, primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    __table_args__ = (
        ForeignKeyConstraint(["app_id", "input_id"], ["inputs.app_id", "inputs.id"], ondelete="CASCADE"),
        Index("ix_input_concept_scores_concept", "app_id", "concept_id", "value"),
    )


# A deleted model keeps its row under an app id no app has (this prefix and a fresh id), so its
# primary key is never reused and the feedback log's events about it still name it.
DELETED_APP_PREFIX = "~deleted~"


class Model(Base):
    """A model; ``app_id`` is '' for the built-in models every app shares (see DELETED_APP_PREFIX)."""

    __tablename__ = "models"
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app_id: Mapped[str] = mapped_column(ID)
    id: Mapped[str] = mapped_column(ID)
    name: Mapped[str] = mapped_column(String(255))
    model_type: Mapped[str] = mapped_column(String(32))
    runtime: Mapped[str] = mapped_column(String(64))
    # An app's own concept model: {"concepts": [{"id", "name"}], "output_config": {...}} as created;
    # None for the built-in models, whose runtime knows their concepts.
    output_info: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    __table_args__ = (UniqueConstraint("app_id", "id", name="uq_models_app_id"),)


class ModelVersion(Base):
    """An immutable model version; ``app_id`` '' marks a base version shared by every app."""

    __tablename__ = "model_versions"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    model_pk: Mapped[int] = mapped_column(ForeignKey("models.pk", ondelete="CASCADE"), index=True)
    app_id: Mapped[str] = mapped_column(ID)
    parent_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    status_code: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    artifact_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # while training: {"stage": what it does now, "fraction": share of the stages passed}
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class ActiveVersion(Base):
    """Which version of a model an app predicts with when no version is named (promotion)."""

    __tablename__ = "active_versions"
    app_id: Mapped[str] = mapped_column(ID, primary_key=True)
    model_pk: Mapped[int] = mapped_column(ForeignKey("models.pk", ondelete="CASCADE"), primary_key=True)
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))
    modified_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # the operator chose it (activate, rollback): automatic promotion replaces it only with a
    # version that wins on feedback given since (modified_at)
    by_hand: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Output(Base):
    """One remembered prediction: what a model version said about one image."""

    __tablename__ = "outputs"
    # the alarm check reads a model's first and latest outputs since a promotion (services/monitoring)
    __table_args__ = (Index("ix_outputs_app_model_created", "app_id", "model_pk", "created_at", "id"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    app_id: Mapped[str] = mapped_column(ID, index=True)
    model_pk: Mapped[int] = mapped_column(Integer)
    version_id: Mapped[str] = mapped_column(ID)
    input_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    digest: Mapped[str] = mapped_column(String(64), index=True)  # blob collection asks who still shows it
    image_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    key_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Embedding(Base):
    """An embedding of an image (by content digest) in one embedding space; computed once."""

    __tablename__ = "embeddings"
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    space: Mapped[str] = mapped_column(String(64), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class Search(Base):
    __tablename__ = "searches"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    app_id: Mapped[str] = mapped_column(ID, index=True)
    query: Mapped[dict[str, Any]] = mapped_column(JSON)
    kind: Mapped[str] = mapped_column(String(64))  # e.g. 'annotated+metadata+predicted+url+visual'
    key_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # Query identity (docs/search-learning.md): the click memory finds earlier searches by these.
    scope: Mapped[str | None] = mapped_column(String(64), nullable=True)  # hash of the non-visual terms
    identity: Mapped[str | None] = mapped_column(String(64), nullable=True)  # hash of scope and images
    query_digests: Mapped[str | None] = mapped_column(Text, nullable=True)  # visual query images, '+'-joined
    # What ranked it: the active embedding version, '+memory' when the click memory took part.
    ranking: Mapped[str | None] = mapped_column(String(64), nullable=True)
    __table_args__ = (Index("ix_searches_app_scope", "app_id", "scope"),)


class SearchHit(Base):
    __tablename__ = "search_hits"
    search_id: Mapped[str] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    input_id: Mapped[str] = mapped_column(ID)
    score: Mapped[float] = mapped_column(Float)
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the image shown (None: before 0013)
    # Set on a hit placed by exploration: the probability that it was shown there.
    propensity: Mapped[float | None] = mapped_column(Float, nullable=True)
    __table_args__ = (Index("ix_search_hits_input", "search_id", "input_id"),
                      # the embedding collector asks whether a remembered search showed an image
                      Index("ix_search_hits_digest", "digest"))


class SearchQueryImage(Base):
    """A query image of a search, one row per digest of ``searches.query_digests``: the embedding
    collector (:mod:`visionloop.services.embedding_gc`) asks by digest whether a remembered query
    still needs an image's embedding."""

    __tablename__ = "search_query_images"
    search_id: Mapped[str] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class FeedbackEvent(Base):
    """Append-only log of feedback; never updated in place."""

    __tablename__ = "feedback_events"
    # a model's verdicts, newest first: the alarm check (services/monitoring) and training read them
    __table_args__ = (Index("ix_feedback_events_app_model_type_seq", "app_id", "model_pk", "event_type", "seq"),)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=True)
    id: Mapped[str] = mapped_column(ID, unique=True)
    app_id: Mapped[str] = mapped_column(ID, index=True)
    event_type: Mapped[str] = mapped_column(String(32))
    model_pk: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    output_id: Mapped[str | None] = mapped_column(ID, nullable=True, index=True)
    search_id: Mapped[str | None] = mapped_column(ID, nullable=True, index=True)
    input_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    rank: Mapped[int | None] = mapped_column(Integer, nullable=True)
    end_user_id: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    session_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    body_hash: Mapped[str] = mapped_column(String(64), index=True)
    key_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # body.normalized.digest, the image the event is about: its embedding stays while the event does
    digest: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)


class Usage(Base):
    """Monthly operation counts per app and key (feedback is never counted)."""

    __tablename__ = "usage"
    app_id: Mapped[str] = mapped_column(ID, primary_key=True)
    key_id: Mapped[str] = mapped_column(ID, primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    op: Mapped[str] = mapped_column(String(32), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class RateBucket(Base):
    """A token bucket every API process of one database shares (:mod:`visionloop.services.ratelimit`):
    ``kind`` names the limit and what it counts per (``feedback:key``, ``feedback:app``). Times are
    epoch seconds as a float, so that the refill is plain arithmetic in SQL on either backend;
    ``granted`` is what the last lease took (an UPDATE's RETURNING reads it)."""

    __tablename__ = "rate_buckets"
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(ID, primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    refilled: Mapped[float] = mapped_column(Float)
    granted: Mapped[float] = mapped_column(Float, default=0.0)


class ServerSecret(Base):
    """A secret every API process of one database shares (the console signs its session cookies
    with one), created once on first use."""

    __tablename__ = "server_secrets"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ConsoleSession(Base):
    """A console sign-in: its cookie names ``nonce``; signing out ends it for every copy of the cookie."""

    __tablename__ = "console_sessions"
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(ID)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ConsoleAction(Base):
    """The console's audit log: what an operator did (train, promote, roll back, erase an end
    user's feedback), with which key; ``model_id`` is None for an erasure."""

    __tablename__ = "console_actions"
    __table_args__ = (Index("ix_console_actions_app_created", "app_id", "created_at"),)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                     autoincrement=True)
    app_id: Mapped[str] = mapped_column(ID)
    key_id: Mapped[str] = mapped_column(ID)
    action: Mapped[str] = mapped_column(String(32))
    model_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    version_id: Mapped[str | None] = mapped_column(ID, nullable=True)
    detail: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Alarm(Base):
    """A monitoring alarm of an app (:mod:`visionloop.services.monitoring`), one row per kind, model
    and subject (a concept id, a search query kind, or None), updated in place by the alarm check:
    ``since`` is when it entered ``state``; ``baseline`` names the active version (or the search
    ranking) its history is counted from; ``last_outside`` is the time of the newest event at the
    last check outside the bound (:mod:`visionloop.learning.hysteresis`)."""

    __tablename__ = "alarms"
    __table_args__ = (Index("ix_alarms_app_state", "app_id", "state"),)
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    app_id: Mapped[str] = mapped_column(ID)
    kind: Mapped[str] = mapped_column(String(32))
    model_pk: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subject: Mapped[str | None] = mapped_column(String(255), nullable=True)
    subject_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    figure: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    evidence: Mapped[int] = mapped_column(Integer)
    p_value: Mapped[float] = mapped_column(Float)
    baseline: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_outside: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
