"""The feedback log: append-only events, deduplicated on write, read by filters, erased by end user.

- **Append-only.** :meth:`FeedbackLog.append` inserts one ``feedback_events`` row per accepted
  feedback and commits before returning; no code updates an event.
- **Retries are stored once.** An event whose ``body_hash`` (what was said, about which output
  or search, by which end user in which session — see :mod:`.record`) equals that of the latest
  event on the same subject (:attr:`NewEvent.subject`: the same output or search, input, end user
  and session) stored within ``feedback_dedup_seconds`` is not stored again; the caller still gets
  Ok. Only a retry of the latest statement is dropped: true, false, true again is three events, so
  the user's final answer is true. Writers are serialised per subject (SQLite has one writer;
  PostgreSQL takes a transaction-scoped advisory lock per subject), so concurrent retries are
  stored once too.
- **Group commit.** Requests arriving together are written in one transaction (one flush to
  disk), each answered only once that transaction has committed.
- **Deletion has exactly two sanctioned paths**, both here: :meth:`erase_end_user` (privacy) and
  :meth:`prune` (retention, ``feedback_retention_days``). Both delete by id in one transaction
  and then call every function in :attr:`FeedbackLog.erasure_hooks` with an :class:`Erasure`
  naming what was affected, so data derived from the log (labels, metrics) can be rebuilt.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Select, bindparam, delete, insert, or_, select

from visionloop import errors
from visionloop.ids import new_id
from visionloop.learning.vocabulary import NormalizedEvent
from visionloop.metrics import METRICS
from visionloop.services.paging import Page
from visionloop.store.db import Database, insert_missing, serialize
from visionloop.store.group_commit import GroupCommit
from visionloop.store.prepared import Prepared, PreparedIn, slots
from visionloop.store.tables import DELETED_APP_PREFIX, Concept, FeedbackEvent, Model, name_key, utcnow

log = logging.getLogger("visionloop.feedback")

DELETE_CHUNK = 500

# Built once, run per batch of feedback (building a statement costs more than running it), and
# compiled once (visionloop/store/prepared.py): a batch writes faster prepared than through
# Connection.execute (and on the connection writing() keeps; docs/benchmarks.md).
_EARLIER = PreparedIn(lambda n: select(FeedbackEvent.app_id, FeedbackEvent.body_hash, FeedbackEvent.id,
                                        FeedbackEvent.seq)
                      .where(FeedbackEvent.body_hash.in_(slots("hash", n)),
                             FeedbackEvent.created_at >= bindparam("since"))
                      .order_by(FeedbackEvent.seq))
_SUBJECT = ("event_type", "model_pk", "output_id", "search_id", "input_id", "end_user_id", "session_id")
# A later event on the subject of an earlier identical one, saying something else: the earlier is not the latest.
_SAID_SINCE = Prepared(select(FeedbackEvent.seq).where(
    FeedbackEvent.app_id == bindparam("app_id"), FeedbackEvent.seq > bindparam("seq"),
    FeedbackEvent.body_hash != bindparam("body_hash"),
    *(getattr(FeedbackEvent, c).is_not_distinct_from(bindparam(c)) for c in _SUBJECT)).limit(1))
_EVENT_COLUMNS = ("id", "app_id", "event_type", "model_pk", "version_id", "output_id", "search_id", "input_id",
                  "rank", "end_user_id", "session_id", "body", "body_hash", "key_id", "created_at", "digest")
_APPEND = Prepared(insert(FeedbackEvent), _EVENT_COLUMNS)
# The app's concept a new concept's id names: that id, else the oldest with that name (by name_key).
_NAMESAKE = (select(Concept.id)
             .where(Concept.app_id == bindparam("app_id"),
                    or_(Concept.id == bindparam("id"), Concept.name_key == bindparam("key")))
             .order_by(Concept.id != bindparam("id"), Concept.created_at, Concept.id).limit(1))


@dataclasses.dataclass(frozen=True)
class NewEvent:
    app_id: str
    key_id: str
    event_type: str
    body_hash: str
    normalized: NormalizedEvent
    raw: dict[str, Any]
    end_user_id: str | None = None
    session_id: str | None = None
    model_pk: int | None = None
    version_id: str | None = None
    output_id: str | None = None
    search_id: str | None = None
    input_id: str | None = None
    rank: int | None = None
    new_concepts: tuple[tuple[str, str], ...] = ()  # (id, name) to create in the app

    @property
    def subject(self) -> tuple[Any, ...]:
        """What the event is a statement about; a later statement on it supersedes this one."""
        return (self.app_id, *(getattr(self, c) for c in _SUBJECT))


@dataclasses.dataclass(frozen=True)
class Appended:
    event_id: str
    duplicate: bool  # True: an identical event was already stored within the window


@dataclasses.dataclass(frozen=True)
class Erasure:
    """What one deletion removed; given to every erasure hook after the commit."""

    app_id: str
    reason: str                    # "end_user" or "retention"
    count: int
    end_user_id: str | None = None
    model_pks: frozenset[int] = frozenset()
    output_ids: frozenset[str] = frozenset()
    search_ids: frozenset[str] = frozenset()
    digests: frozenset[str] = frozenset()  # the images the erased events were about
    # the oldest erased event per model (None: search clicks, which the embedding model's ranking
    # learns from): a version whose training read the log past it learned from erased events
    first_seqs: Mapping[int | None, int] = dataclasses.field(default_factory=dict, hash=False)


@dataclasses.dataclass(frozen=True)
class FeedbackFilter:
    model_pk: int | None = None
    version_id: str | None = None
    event_type: str | None = None
    end_user_id: str | None = None
    session_id: str | None = None
    output_id: str | None = None
    search_id: str | None = None
    created_after: dt.datetime | None = None   # inclusive
    created_before: dt.datetime | None = None  # exclusive


ErasureHook = Callable[[Erasure], None]


def _settle_new_concepts(s: Connection, ev: NewEvent,
                         batch: dict[tuple[str, str], str]) -> list[tuple[str, str]]:
    """The event's new concepts still to create, now that this transaction holds their names' locks.

    Concepts were resolved before this transaction: a request running at the same time may have
    created one by the same name in another case ('tabby' while this one says 'Tabby'), on
    PostgreSQL in another process. A name is one concept per app, so the event is pointed at the
    concept that exists now (as a lookup now would resolve it) instead of creating a namesake.
    ``batch`` holds the concepts this transaction creates so far, by (app, id).
    """
    todo, remap = [], {}
    for cid, name in ev.new_concepts:
        key = name_key(cid)
        found = next((c for (app, c) in batch if app == ev.app_id and name_key(c) == key), None)
        found = found or s.execute(_NAMESAKE, {"app_id": ev.app_id, "id": cid, "key": key}).scalar()
        if found is None or found == cid:
            todo.append((cid, name))
        else:
            remap[cid] = found
    if remap:
        statements = [ev.normalized.get("concepts") or []]
        statements += [r.get("concepts") or [] for r in ev.normalized.get("regions") or []]
        for concept in (c for group in statements for c in group if c["id"] in remap):
            concept["id"], concept["source"] = remap[concept["id"]], "app"
    return todo


def as_utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


def parse_time(value: str | None, name: str) -> dt.datetime | None:
    """A time filter given as ISO 8601 text (UTC unless it says otherwise), as an aware UTC time."""
    if not value:
        return None
    try:  # a '+' in a query string arrives as a space
        parsed = dt.datetime.fromisoformat(value.strip().replace(" ", "+"))
    except ValueError:
        raise errors.InvalidRequest(f"{name}: must be an ISO 8601 time such as 2026-01-31T12:00:00Z, "
                                    f"got {value[:40]!r}") from None
    try:
        return as_utc(parsed)
    except OverflowError:  # 9999-12-31T23:00-05:00 is in the year 10000 in UTC
        raise errors.InvalidRequest(f"{name}: {value[:40]!r} is outside the years 1 to 9999 in UTC") from None


def record_of(row: FeedbackEvent, model_id: str | None, model_app: str | None = None) -> dict[str, Any]:
    """An event as a plain JSON record (the API listing and the export share it); ``model_app`` is the
    app id of the event's model row (a deleted model's is a tombstone, and the event says so)."""
    body = row.body or {}
    return {
        "id": row.id, "app_id": row.app_id, "event_type": row.event_type,
        "created_at": as_utc(row.created_at).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "model_id": model_id, "model_deleted": bool(model_app and model_app.startswith(DELETED_APP_PREFIX)),
        "version_id": row.version_id, "output_id": row.output_id,
        "search_id": row.search_id, "input_id": row.input_id, "rank": row.rank,
        "end_user_id": row.end_user_id, "session_id": row.session_id, "key_id": row.key_id,
        "unlinked": "unlinked" in body.get("normalized", {}),
        "data": body.get("normalized", {}), "raw": body.get("raw", {}),
    }


class FeedbackLog:
    def __init__(self, db: Database, *, dedup_seconds: int, retention_days: int) -> None:
        self.db = db
        self.dedup_window = dt.timedelta(seconds=dedup_seconds)
        self.retention_days = retention_days
        self.erasure_hooks: list[ErasureHook] = []
        self._commits: GroupCommit[NewEvent, Appended] = GroupCommit(self._write)

    # -- writing ------------------------------------------------------------------------------
    def append(self, ev: NewEvent) -> Appended:
        """Store one event (and the new concepts it names), unless a duplicate; committed on return.

        Concurrent appends share a transaction (:mod:`visionloop.store.group_commit`).
        """
        appended = self._commits.submit(ev)
        METRICS.feedback_stored(ev.normalized, appended.duplicate)
        return appended

    def _write(self, events: Sequence[NewEvent]) -> list[Appended]:
        """One transaction for a batch of events, oldest first: retries of the latest statement on a
        subject, stored or earlier in the batch, are not stored again."""
        METRICS.feedback_commit_batch.observe(len(events))
        now = utcnow()
        out: list[Appended] = []
        rows: list[dict[str, Any]] = []
        concepts: dict[tuple[str, str], str] = {}
        with self.db.writing() as s:
            locks = {"\0".join(map(str, ev.subject)) for ev in events}
            locks |= {f"{ev.app_id}\0concept\0{name_key(cid)}" for ev in events for cid, _ in ev.new_concepts}
            for lock in sorted(locks):  # in one order, so two processes never deadlock
                serialize(s, lock)
            stored: dict[tuple[str, str], Any] = {}  # the latest stored event of each hash in the window
            if self.dedup_window:
                hashes = sorted({ev.body_hash for ev in events})
                for r in _EARLIER.all(s, {"since": now - self.dedup_window}, hash=hashes):
                    stored[(r.app_id, r.body_hash)] = r
            latest: dict[tuple[Any, ...], tuple[str, str]] = {}  # subject -> (hash, id) stored by this batch
            for ev in events:
                earlier = self._retried(s, ev, stored, latest) if self.dedup_window else None
                if earlier is not None:
                    out.append(Appended(earlier, duplicate=True))
                    continue
                event_id = new_id()
                latest[ev.subject] = (ev.body_hash, event_id)
                for cid, name in _settle_new_concepts(s, ev, concepts):  # may repoint ev.normalized
                    concepts.setdefault((ev.app_id, cid), name)
                rows.append({"id": event_id, "app_id": ev.app_id, "event_type": ev.event_type,
                             "model_pk": ev.model_pk, "version_id": ev.version_id, "output_id": ev.output_id,
                             "search_id": ev.search_id, "input_id": ev.input_id, "rank": ev.rank,
                             "end_user_id": ev.end_user_id, "session_id": ev.session_id,
                             "body": {"normalized": ev.normalized, "raw": ev.raw}, "body_hash": ev.body_hash,
                             "key_id": ev.key_id, "created_at": now, "digest": ev.normalized.get("digest")})
                out.append(Appended(event_id, duplicate=False))
            if rows:
                _APPEND.execute_many(s, rows)
            insert_missing(s, Concept, [{"app_id": app_id, "id": cid, "name": name, "created_at": now,
                                         "modified_at": now} for (app_id, cid), name in concepts.items()],
                           key=("app_id", "id"))
        return out

    @staticmethod
    def _retried(s: Connection, ev: NewEvent, stored: dict[tuple[str, str], Any],
                 latest: dict[tuple[Any, ...], tuple[str, str]]) -> str | None:
        """The id of the event ``ev`` retries: the latest statement on its subject, if it said the same."""
        if ev.subject in latest:
            body_hash, event_id = latest[ev.subject]
            return event_id if body_hash == ev.body_hash else None
        row = stored.get((ev.app_id, ev.body_hash))
        if row is None:
            return None
        subject = {c: getattr(ev, c) for c in _SUBJECT}
        since = _SAID_SINCE.first(s, {"app_id": ev.app_id, "seq": row.seq, "body_hash": ev.body_hash, **subject})
        return row.id if since is None else None

    # -- reading ------------------------------------------------------------------------------
    def _query(self, app_id: str | None, flt: FeedbackFilter) -> Select[FeedbackEvent, str | None, str | None]:
        q = cast("Select[FeedbackEvent, str | None, str | None]",  # the outer join: no model, no id
                 select(FeedbackEvent, Model.id, Model.app_id).outerjoin(Model, Model.pk == FeedbackEvent.model_pk))
        if app_id is not None:
            q = q.where(FeedbackEvent.app_id == app_id)
        for column, value in ((FeedbackEvent.model_pk, flt.model_pk), (FeedbackEvent.version_id, flt.version_id),
                              (FeedbackEvent.event_type, flt.event_type),
                              (FeedbackEvent.end_user_id, flt.end_user_id),
                              (FeedbackEvent.session_id, flt.session_id), (FeedbackEvent.output_id, flt.output_id),
                              (FeedbackEvent.search_id, flt.search_id)):
            if value is not None:
                q = q.where(column == value)
        if flt.created_after is not None:
            q = q.where(FeedbackEvent.created_at >= as_utc(flt.created_after))
        if flt.created_before is not None:
            q = q.where(FeedbackEvent.created_at < as_utc(flt.created_before))
        return q.order_by(FeedbackEvent.seq)

    def list(self, app_id: str, flt: FeedbackFilter, page: Page, *, newest_first: bool = False) -> list[dict[str, Any]]:
        """One page of an app's events, oldest first (pages stay stable while the log grows), or
        newest first (what a person browsing the log looks at)."""
        q = self._query(app_id, flt)
        if newest_first:
            q = q.order_by(None).order_by(FeedbackEvent.seq.desc())
        with self.db.session() as s:
            rows = s.execute(q.offset(page.offset).limit(page.per_page)).all()
        return [record_of(ev, model_id, model_app) for ev, model_id, model_app in rows]

    def iter_records(self, app_id: str | None, flt: FeedbackFilter, batch: int = 1000) -> Iterator[dict[str, Any]]:
        """Every matching event (all apps when ``app_id`` is None), oldest first, read in batches."""
        after = 0
        while True:
            with self.db.session() as s:
                rows = s.execute(self._query(app_id, flt).where(FeedbackEvent.seq > after).limit(batch)).all()
            if not rows:
                return
            for ev, model_id, model_app in rows:
                yield record_of(ev, model_id, model_app)
            after = rows[-1][0].seq

    # -- the only deletions -------------------------------------------------------------------
    def erase_end_user(self, app_id: str, end_user_id: str) -> Erasure:
        """Delete every event of one end user of one app (privacy erasure); returns what went."""
        if not end_user_id:
            raise ValueError("an end user id is required")
        erased = self._delete(select(FeedbackEvent.seq, FeedbackEvent.app_id, FeedbackEvent.model_pk,
                                     FeedbackEvent.output_id, FeedbackEvent.search_id, FeedbackEvent.digest)
                              .where(FeedbackEvent.app_id == app_id, FeedbackEvent.end_user_id == end_user_id),
                              reason="end_user", end_user_id=end_user_id)
        return erased.get(app_id) or Erasure(app_id=app_id, reason="end_user", count=0, end_user_id=end_user_id)

    def prune(self, now: dt.datetime | None = None, days: int | None = None) -> builtins.list[Erasure]:
        """Delete events older than the retention (``days`` or the setting; 0 keeps everything)."""
        days = self.retention_days if days is None else days
        if days <= 0:
            return []
        cutoff = as_utc(now or utcnow()) - dt.timedelta(days=days)
        erased = self._delete(select(FeedbackEvent.seq, FeedbackEvent.app_id, FeedbackEvent.model_pk,
                                     FeedbackEvent.output_id, FeedbackEvent.search_id, FeedbackEvent.digest)
                              .where(FeedbackEvent.created_at < cutoff), reason="retention")
        return list(erased.values())

    def _delete(self, victims: Select[int, str, int | None, str | None, str | None, str | None], *, reason: str,
                end_user_id: str | None = None) -> dict[str, Erasure]:
        with self.db.transaction() as s:
            rows = s.execute(victims).all()
            seqs = [r.seq for r in rows]
            for i in range(0, len(seqs), DELETE_CHUNK):
                s.execute(delete(FeedbackEvent).where(FeedbackEvent.seq.in_(seqs[i:i + DELETE_CHUNK])))
        by_app: dict[str, list[Any]] = {}
        for r in rows:
            by_app.setdefault(r.app_id, []).append(r)
        out = {}
        for app_id, items in by_app.items():
            first_seqs: dict[int | None, int] = {}
            for r in items:
                first_seqs[r.model_pk] = min(r.seq, first_seqs.get(r.model_pk, r.seq))
            out[app_id] = Erasure(app_id=app_id, reason=reason, count=len(items), end_user_id=end_user_id,
                                  model_pks=frozenset(r.model_pk for r in items if r.model_pk is not None),
                                  output_ids=frozenset(r.output_id for r in items if r.output_id),
                                  search_ids=frozenset(r.search_id for r in items if r.search_id),
                                  digests=frozenset(r.digest for r in items if r.digest),
                                  first_seqs=first_seqs)
        for erasure in out.values():
            self._notify(erasure)
        return out

    def _notify(self, erasure: Erasure) -> None:
        """Rebuild what was derived from the erased events. The events are gone whatever a hook does."""
        for hook in list(self.erasure_hooks):
            try:
                hook(erasure)
            except Exception:  # a failing rebuild must not undo or hide a completed erasure
                log.exception("feedback erasure hook %r failed for app %s", hook, erasure.app_id)
