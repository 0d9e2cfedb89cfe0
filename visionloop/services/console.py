"""What the operator console reads and keeps beyond the API's own services: the secret its session
cookies are signed with and the sign-ins (in the database, so every API process accepts a session
any of them started, and signing out on one ends it on all), the audit log of operators' actions,
and views of the feedback log (per day, per end user, the review queue) and of searches (the top
queries)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import threading
from collections import Counter
from typing import Any, cast

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from visionloop.learning.boxes import Box
from visionloop.learning.review import Disputed, Vote, disagreement, disputed
from visionloop.learning.vocabulary import EventType, RegionFeedback
from visionloop.services.apps import Caller
from visionloop.services.feedback.regions import predicted_regions
from visionloop.services.input_regions import box_of, regions_of
from visionloop.services.paging import Page
from visionloop.services.training.service import UNSURE
from visionloop.store.db import Database, insert_missing
from visionloop.store.tables import (
    ConsoleAction,
    ConsoleSession,
    FeedbackEvent,
    Input,
    InputConcept,
    Model,
    Output,
    Search,
    ServerSecret,
    input_has_image,
    utcnow,
)

SESSION_SECRET = "console_session"
ACTIONS = ("train", "activate", "erase")


@dataclasses.dataclass(frozen=True)
class EndUser:
    end_user_id: str
    events: int
    first: dt.datetime
    last: dt.datetime


@dataclasses.dataclass(frozen=True)
class EventImage:
    digest: str
    regions: list[dict[str, Any]]  # as the event's normalized body holds them
    predicted: dict[str, Box]      # the output's predicted boxes, by region id
    stored_input: bool             # the image is a stored input's (unlinked feedback naming it), not the event's own


@dataclasses.dataclass(frozen=True)
class ReviewBox:
    """A box a detection model predicted on a stored input, in question: the model was unsure of it
    (``score`` between the review queue's bounds) or its end users' region feedback disagrees."""

    box: Box
    concept_id: str
    concept_name: str
    score: float
    verdicts: dict[str, int]  # end users' latest region feedback on it, by verdict
    label: bool | None        # the app's annotation: a region with this box showing the concept, or not


@dataclasses.dataclass(frozen=True)
class ReviewImage:
    input_id: str
    boxes: list[ReviewBox]
    annotated: list[tuple[Box, bool]]  # every box the app annotated on the input (shown or not), to draw


@dataclasses.dataclass(frozen=True)
class TopQuery:
    query: str                           # the query as asked (JSON, shortened)
    kind: str
    searches: int
    clicks: int
    clicked: list[tuple[str, int]]       # (input id, clicks), the most clicked first


@dataclasses.dataclass(frozen=True)
class DayCount:
    day: str
    event_type: str
    model_id: str | None
    count: int
    verdict: str = ""  # present / absent of a concept, a region's verdict, or click


def verdicts(event_type: str, normalized: dict[str, Any]) -> Counter[str]:
    """The judgements one feedback event makes, by verdict: each concept said present or absent,
    each region's verdict; a search click is one click."""
    if event_type == EventType.SEARCH_CLICK:
        return Counter(["click"])
    out = Counter("present" if c.get("value") else "absent" for c in normalized.get("concepts") or [])
    out.update(r.get("feedback") or RegionFeedback.ACCURATE for r in normalized.get("regions") or [])
    return out


class ConsoleService:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._secrets: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def secret(self, name: str = SESSION_SECRET) -> bytes:
        """The database's secret ``name``, created by whichever process asks first (the others
        read the one that won) and kept in memory afterwards."""
        with self._lock:
            if name not in self._secrets:
                with self.db.transaction() as s:
                    insert_missing(s, ServerSecret, [{"name": name, "value": secrets.token_hex(32),
                                                      "created_at": utcnow()}], key=("name",))
                    value = s.scalar(select(ServerSecret.value).where(ServerSecret.name == name))
                assert value is not None
                self._secrets[name] = bytes.fromhex(value)
            return self._secrets[name]

    def open_session(self, caller: Caller, nonce: str, expires_at: dt.datetime) -> None:
        """Record a sign-in (and forget sign-ins that expired: their cookies are refused anyway)."""
        with self.db.transaction() as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < utcnow()))
            s.add(ConsoleSession(nonce=nonce, key_id=caller.key_id, expires_at=expires_at))

    def session_open(self, nonce: str, key_id: str) -> bool:
        """Whether the sign-in ``nonce`` of key ``key_id`` was recorded and not ended since."""
        with self.db.reading() as c:
            row = c.execute(select(ConsoleSession.key_id, ConsoleSession.ended_at)
                            .where(ConsoleSession.nonce == nonce)).first()
        return row is not None and row.key_id == key_id and row.ended_at is None

    def end_session(self, nonce: str) -> None:
        """Sign out: every copy of the session's cookie is refused from now on, on every process."""
        with self.db.transaction() as s:
            s.execute(update(ConsoleSession).where(ConsoleSession.nonce == nonce).values(ended_at=utcnow()))

    def record(self, caller: Caller, action: str, model_id: str | None, version_id: str | None = None,
               detail: str = "") -> None:
        """Append an operator's action to the app's audit log."""
        assert action in ACTIONS, action
        with self.db.transaction() as s:
            s.add(ConsoleAction(app_id=caller.app_id, key_id=caller.key_id, action=action, model_id=model_id,
                                version_id=version_id, detail=detail[:255]))

    def actions(self, app_id: str, *, model_id: str | None = None, action: str | None = None,
                limit: int = 50) -> list[ConsoleAction]:
        """The app's latest operator actions (on one model, of one kind, when named), newest first."""
        q = select(ConsoleAction).where(ConsoleAction.app_id == app_id)
        if model_id is not None:
            q = q.where(ConsoleAction.model_id == model_id)
        if action is not None:
            q = q.where(ConsoleAction.action == action)
        with self.db.session() as s:
            return list(s.scalars(q.order_by(ConsoleAction.seq.desc()).limit(limit)))

    def stored_inputs(self, app_id: str, input_ids: list[str]) -> set[str]:
        """Which of ``input_ids`` are inputs stored in the app (whose image can be shown)."""
        if not input_ids:
            return set()
        with self.db.session() as s:
            return set(s.scalars(select(Input.id).where(Input.app_id == app_id, Input.id.in_(input_ids),
                                                        input_has_image())))

    def end_users(self, app_id: str, page: Page) -> list[EndUser]:
        """The app's end users with feedback, the most recently active first."""
        last = func.max(FeedbackEvent.created_at)
        q = (select(FeedbackEvent.end_user_id, func.count(), func.min(FeedbackEvent.created_at), last)
             .where(FeedbackEvent.app_id == app_id, FeedbackEvent.end_user_id.is_not(None))
             .group_by(FeedbackEvent.end_user_id).order_by(last.desc(), FeedbackEvent.end_user_id)
             .offset(page.offset).limit(page.per_page))
        with self.db.session() as s:
            # the WHERE keeps end_user_id non-null
            return [EndUser(cast(str, user), n, first, last) for user, n, first, last in s.execute(q)]

    def events_of(self, app_id: str, end_user_id: str) -> dict[str, int]:
        """How many feedback events of each type an end user of the app gave (what erasing removes)."""
        q = (select(FeedbackEvent.event_type, func.count())
             .where(FeedbackEvent.app_id == app_id, FeedbackEvent.end_user_id == end_user_id)
             .group_by(FeedbackEvent.event_type))
        with self.db.session() as s:
            return {t: n for t, n in s.execute(q)}

    def review_queue(self, app_id: str, limit: int = 30, window: int = 5000) -> list[tuple[Disputed, float | None]]:
        """Stored inputs whose concepts the app's end users disagree on most (in the latest
        ``window`` concept feedback events), each with the app's own annotation if it has one."""
        with self.db.session() as s:
            queue = disputed(_votes(s, app_id, window), limit)
            ids = {d.input_id for d in queue}
            labels = {(a.input_id, a.concept_id): a.value for a in s.scalars(
                select(InputConcept).where(InputConcept.app_id == app_id, InputConcept.input_id.in_(ids)))}
        return [(d, labels.get((d.input_id, d.concept_id))) for d in queue]

    def review_boxes(self, app_id: str, input_id: str | None = None, limit: int = 10,
                     window: int = 2000) -> list[ReviewImage]:
        """Stored inputs of the app (or just ``input_id``) with predicted boxes in question, the latest
        output with regions per input among the app's latest ``window`` outputs of its stored images,
        each box with the app's annotation of it if it has one."""
        q = (select(Output.id, Output.result, Input.id.label("input_id"))
             .join(Input, (Input.app_id == Output.app_id) & (Input.digest == Output.digest))
             .where(Output.app_id == app_id, input_has_image())
             .order_by(Output.created_at.desc(), Output.id).limit(window))
        if input_id is not None:
            q = q.where(Input.id == input_id)
        with self.db.session() as s:
            latest: dict[str, tuple[str, dict[str, Any]]] = {}
            for row in s.execute(q):
                if (row.result or {}).get("regions") and len(latest) < limit:
                    latest.setdefault(row.input_id, (row.id, row.result))
            said = _region_verdicts(s, app_id, [o for o, _ in latest.values()])
            stored = regions_of(s, app_id, list(latest))
        out = []
        for input_id_, (output_id, result) in latest.items():
            annotated = {(box_of(r), c["id"]): bool(c.get("value")) for r in stored.get(input_id_, [])
                         for c in r.concepts}
            boxes = []
            for region in result["regions"]:
                if not region.get("concepts"):
                    continue
                concept_id, name, score = region["concepts"][0]
                box = Box(*(float(v) for v in region["box"]))
                verdicts = said.get((output_id, str(region["id"])), Counter())
                if UNSURE[0] <= float(score) <= UNSURE[1] or len(verdicts) > 1:
                    boxes.append(ReviewBox(box, concept_id, name or concept_id, float(score), dict(verdicts),
                                           annotated.get((box, concept_id))))
            if boxes:
                out.append(ReviewImage(input_id_, boxes, [(b, shown) for (b, _), shown in annotated.items()]))
        return out

    def disagreement(self, app_id: str, window: int = 5000) -> tuple[int, int]:
        """(judgements of stored images end users disagree on, those two or more of them made), in
        the latest ``window`` concept feedback events: the overview's disagreement rate."""
        with self.db.session() as s:
            return disagreement(_votes(s, app_id, window))

    def event_image(self, app_id: str, event_id: str) -> EventImage | None:
        """The image a feedback event of the app judged (its output's, its clicked hit's, or else
        the stored input of the app it names or whose bytes it sent), the regions it judged and the
        boxes its output predicted for them; None when unknown. Unlinked feedback names an image
        only by a digest its sender gave: it is shown only if the app stores that image as an input,
        so it can never reveal what another app stored."""
        with self.db.session() as s:
            row = s.execute(select(FeedbackEvent.event_type, FeedbackEvent.input_id, FeedbackEvent.output_id,
                                   FeedbackEvent.body)
                            .where(FeedbackEvent.app_id == app_id, FeedbackEvent.id == event_id)).first()
            if row is None:
                return None
            normalized = (row.body or {}).get("normalized") or {}
            digest = normalized.get("digest")
            linked = bool(row.output_id) or (row.event_type == EventType.SEARCH_CLICK and "search_kind" in normalized)
            if not linked:
                digest = _stored_image(s, app_id, row.input_id, digest)
            regions = normalized.get("regions") or []
            result = s.scalar(select(Output.result).where(Output.app_id == app_id, Output.id == row.output_id)) \
                if regions and row.output_id else None
        predicted = {p.id: p.box for p in predicted_regions(result or {})}
        return EventImage(digest, regions, predicted, not linked) if digest else None

    def top_queries(self, app_id: str, limit: int = 10, window: int = 2000) -> list[TopQuery]:
        """The queries asked most often among the app's latest ``window`` searches (one query: one
        identity, so near-duplicate query images count together), with the hits users clicked."""
        with self.db.session() as s:
            rows = s.execute(select(Search.id, Search.identity, Search.query, Search.kind)
                             .where(Search.app_id == app_id)
                             .order_by(Search.created_at.desc(), Search.id).limit(window)).all()
            groups: dict[str, list[Any]] = {}
            for r in rows:
                groups.setdefault(r.identity or json.dumps(r.query, sort_keys=True), []).append(r)
            top = sorted(groups.values(), key=lambda g: -len(g))[:limit]
            ids = [r.id for g in top for r in g]
            clicks = s.execute(select(FeedbackEvent.search_id, FeedbackEvent.input_id)
                               .where(FeedbackEvent.app_id == app_id, FeedbackEvent.event_type == EventType.SEARCH_CLICK,
                                      FeedbackEvent.search_id.in_(ids))).all() if ids else []
        by_search: dict[str, list[str]] = {}
        for c in clicks:
            by_search.setdefault(c.search_id, []).append(c.input_id)
        out = []
        for g in top:
            clicked = Counter(i for r in g for i in by_search.get(r.id, []) if i)
            out.append(TopQuery(json.dumps(g[0].query, sort_keys=True)[:300], g[0].kind, len(g),
                                sum(clicked.values()), clicked.most_common(5)))
        return out

    def feedback_per_day(self, app_id: str, days: int = 14) -> list[DayCount]:
        """The app's feedback events of the last ``days`` days, counted per UTC day, type and model."""
        since = utcnow() - dt.timedelta(days=days)
        day = func.date(FeedbackEvent.created_at)
        q = (select(day, FeedbackEvent.event_type, Model.id, func.count())
             .outerjoin(Model, Model.pk == FeedbackEvent.model_pk)
             .where(FeedbackEvent.app_id == app_id, FeedbackEvent.created_at >= since)
             .group_by(day, FeedbackEvent.event_type, Model.id).order_by(day.desc(), FeedbackEvent.event_type))
        with self.db.session() as s:
            return [DayCount(str(d), t, m, n) for d, t, m, n in s.execute(q)]

    def verdicts_per_day(self, app_id: str, days: int = 14, window: int = 20000) -> list[DayCount]:
        """The judgements in the app's latest ``window`` feedback events of the last ``days`` days,
        counted per UTC day, event type and verdict (all models together)."""
        since = utcnow() - dt.timedelta(days=days)
        q = (select(FeedbackEvent.created_at, FeedbackEvent.event_type, FeedbackEvent.body)
             .where(FeedbackEvent.app_id == app_id, FeedbackEvent.created_at >= since)
             .order_by(FeedbackEvent.seq.desc()).limit(window))
        counts: Counter[tuple[str, str, str]] = Counter()
        with self.db.session() as s:
            for at, event_type, body in s.execute(q):
                day = at.date().isoformat()
                for verdict, n in verdicts(event_type, (body or {}).get("normalized") or {}).items():
                    counts[day, event_type, verdict] += n
        return [DayCount(day, t, None, n, verdict) for (day, t, verdict), n in sorted(counts.items())]


def _votes(s: Session, app_id: str, window: int) -> list[Vote]:
    """End users' concept votes on the app's stored images in its latest ``window`` concept
    feedback events, newest first (each anonymous event its own voter)."""
    rows = s.execute(select(FeedbackEvent.seq, FeedbackEvent.input_id, FeedbackEvent.end_user_id, FeedbackEvent.body)
                     .where(FeedbackEvent.app_id == app_id, FeedbackEvent.event_type == EventType.ANNOTATION,
                            FeedbackEvent.input_id.is_not(None))
                     .order_by(FeedbackEvent.seq.desc()).limit(window)).all()
    stored = set(s.scalars(select(Input.id).where(Input.app_id == app_id, input_has_image(),
                                                  Input.id.in_({r.input_id for r in rows}))))
    return [Vote((r.input_id, c["id"]), r.end_user_id or ("anonymous", r.seq), bool(c.get("value")))
            for r in rows if r.input_id in stored
            for c in ((r.body or {}).get("normalized") or {}).get("concepts") or [] if c.get("id")]


def _region_verdicts(s: Session, app_id: str, output_ids: list[str]) -> dict[tuple[str, str], Counter[str]]:
    """Per (output, predicted region id), its end users' latest region feedback counted by verdict
    (each anonymous event its own voter)."""
    rows = s.execute(select(FeedbackEvent.seq, FeedbackEvent.output_id, FeedbackEvent.end_user_id, FeedbackEvent.body)
                     .where(FeedbackEvent.app_id == app_id, FeedbackEvent.output_id.in_(output_ids))
                     .order_by(FeedbackEvent.seq.desc())).all() if output_ids else []
    latest: dict[tuple[str, str, Any], str] = {}
    for r in rows:
        for region in ((r.body or {}).get("normalized") or {}).get("regions") or []:
            if region.get("region_id") is not None:
                latest.setdefault((r.output_id, str(region["region_id"]), r.end_user_id or ("anonymous", r.seq)),
                                  region.get("feedback") or RegionFeedback.ACCURATE)
    out: dict[tuple[str, str], Counter[str]] = {}
    for (output_id, region_id, _), verdict in latest.items():
        out.setdefault((output_id, region_id), Counter())[verdict] += 1
    return out


def _stored_image(s: Session, app_id: str, input_id: str | None, digest: str | None) -> str | None:
    """The image digest of the app's stored input ``input_id``, or else of one holding ``digest``."""
    q = select(Input.digest).where(Input.app_id == app_id, input_has_image())
    if input_id:
        return s.scalar(q.where(Input.id == input_id))
    if digest:
        return s.scalar(q.where(Input.digest == digest).limit(1))
    return None
