"""The sliding windows the alarms judge, read from the store: predict traffic's embeddings, verdicts
per concept, searches and their clicks. SQL only; judging is :mod:`.alarms`' business.

Traffic embeddings are not stored apart: every output names its image digest, and the image's
features are stored once per digest when it is predicted (:mod:`visionloop.services.predict`). The
windows read outputs, so drift sees exactly the outputs that ``output_retention_days`` keeps, and
their features stay while they do, as do those of the images the feedback log names (a promoted
version's training reference): :mod:`visionloop.services.embedding_gc`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zlib

import numpy as np
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from visionloop.learning.events import verdicts
from visionloop.learning.metrics_search import SearchRecord
from visionloop.learning.vocabulary import EventType
from visionloop.services.feedback.log import as_utc
from visionloop.services.training.data import features, unit_rows
from visionloop.store.tables import ActiveVersion, FeedbackEvent, Model, ModelVersion, Output, Search

MAX_FEEDBACK_EVENTS = 20_000  # the newest annotation events of a model read per check: bounded work
MAX_SEARCHES = 20_000
TRAINING_EVENTS_READ = 5  # times the reference size: the newest annotation events a version learned from, read


@dataclasses.dataclass(frozen=True)
class Baseline:
    """Where a model's history starts for an app: its promotion (None: the base version, always),
    and the newest feedback event the active version learned from (None: it learned from none)."""

    version_id: str | None
    since: dt.datetime | None
    trained_to: int | None = None

    @property
    def key(self) -> str:
        return self.version_id or "base"


@dataclasses.dataclass(frozen=True)
class Traffic:
    """A model's predict traffic since its baseline: the first ``reference`` and latest ``recent``
    embeddings (unit rows), and the times of the recent outputs, oldest first."""

    reference: np.ndarray
    recent: np.ndarray
    recent_times: list[dt.datetime]


@dataclasses.dataclass
class Verdicts:
    """One concept's verdicts since the baseline, oldest first: negative or not, and when."""

    name: str | None
    negative: list[bool] = dataclasses.field(default_factory=list)
    times: list[dt.datetime] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class SearchWindow:
    """Searches of one ranking (the active embedding version), oldest first, with their clicks."""

    ranking: str
    records: list[SearchRecord]
    times: list[dt.datetime]


def models_of(s: Session, app_id: str) -> list[int]:
    """The models an app predicts with: its own and the built-in ones (a handful; not a scan of outputs)."""
    return list(s.scalars(select(Model.pk).where(Model.app_id.in_((app_id, ""))).order_by(Model.pk)))


def baselines(s: Session, app_id: str) -> dict[int, Baseline]:
    """The app's promoted version of each model it promoted one for (others: the base version)."""
    rows = s.execute(select(ActiveVersion.model_pk, ActiveVersion.version_id, ActiveVersion.modified_at,
                            ModelVersion.params)
                     .outerjoin(ModelVersion, ModelVersion.id == ActiveVersion.version_id)
                     .where(ActiveVersion.app_id == app_id))
    return {pk: Baseline(version_id, as_utc(modified_at), ((params or {}).get("trained_on") or {}).get("last_seq"))
            for pk, version_id, modified_at, params in rows}


def training_reference(s: Session, app_id: str, model_pk: int, base: Baseline, size: int) -> np.ndarray | None:
    """Embeddings (unit rows) of ``size`` images the active version learned from: a sample, fixed per
    version, of the images of the model's newest annotation events it read; None when it learned
    from fewer such images with stored features (a base version, a version trained on annotations)."""
    if not base.trained_to or base.version_id is None:
        return None
    bodies = s.scalars(select(FeedbackEvent.body).where(*_verdicts_of(app_id, model_pk, None),
                                                        FeedbackEvent.seq <= base.trained_to)
                       .order_by(FeedbackEvent.seq.desc()).limit(TRAINING_EVENTS_READ * size))
    digests = list(dict.fromkeys(d for body in bodies if (d := ((body or {}).get("normalized") or {}).get("digest"))))
    stored = features(s, digests)
    kept = [d for d in digests if d in stored]
    if len(kept) < size:
        return None
    rng = np.random.default_rng(zlib.crc32(base.version_id.encode()))
    return unit_rows(np.stack([stored[kept[i]] for i in sorted(rng.choice(len(kept), size, replace=False))]))


def newest_output(s: Session, app_id: str, model_pk: int, since: dt.datetime | None) -> dt.datetime | None:
    """The time of the model's newest output since ``since``: cheap, to skip a model with no new traffic."""
    newest = s.scalar(select(func.max(Output.created_at)).where(*_outputs_of(app_id, model_pk, since)))
    return as_utc(newest) if newest is not None else None


def traffic(s: Session, app_id: str, model_pk: int, since: dt.datetime | None, *, reference: int | np.ndarray,
            recent: int) -> Traffic | None:
    """The latest ``recent`` outputs' embeddings against ``reference``: the given embeddings, or those
    of the first ``reference`` outputs; None while fewer than both together (the two sides never
    share an output) or some image has no stored features."""
    where = _outputs_of(app_id, model_pk, since)
    given = reference if isinstance(reference, np.ndarray) else None
    early = s.execute(select(Output.id, Output.digest).where(*where).order_by(Output.created_at, Output.id)
                      .limit(reference)).all() if isinstance(reference, int) else []
    late = s.execute(select(Output.id, Output.digest, Output.created_at).where(*where)
                     .order_by(Output.created_at.desc(), Output.id.desc()).limit(recent)).all()[::-1]
    if given is None and len(early) < reference:
        return None
    if len(late) < recent or {r.id for r in early} & {r.id for r in late}:
        return None
    stored = features(s, sorted({r.digest for r in early} | {r.digest for r in late}))
    if any(r.digest not in stored for r in (*early, *late)):
        return None  # a model whose predictions keep no features (or an image whose features are gone)
    return Traffic(given if given is not None else unit_rows(np.stack([stored[r.digest] for r in early])),
                   unit_rows(np.stack([stored[r.digest] for r in late])), [as_utc(r.created_at) for r in late])


def newest_verdict(s: Session, app_id: str, model_pk: int) -> int | None:
    """The sequence number of the model's newest annotation event: to skip a model with no new verdicts."""
    return s.scalar(select(func.max(FeedbackEvent.seq)).where(*_verdicts_of(app_id, model_pk, None)))


def concept_verdicts(s: Session, app_id: str, model_pk: int, since: dt.datetime | None) -> dict[str, Verdicts]:
    """Every concept's verdicts on the model since ``since`` (the newest events, bounded)."""
    rows = s.execute(select(FeedbackEvent.body, FeedbackEvent.created_at).where(*_verdicts_of(app_id, model_pk, since))
                     .order_by(FeedbackEvent.seq.desc()).limit(MAX_FEEDBACK_EVENTS)).all()[::-1]
    out: dict[str, Verdicts] = {}
    for body, created_at in rows:
        for concept_id, name, negative in verdicts((body or {}).get("normalized") or {}):
            v = out.setdefault(concept_id, Verdicts(name))
            v.name = name or v.name
            v.negative.append(negative)
            v.times.append(as_utc(created_at))
    return out


def search_window(s: Session, app_id: str, settled_before: dt.datetime) -> SearchWindow | None:
    """The app's searches older than ``settled_before`` ranked by the ranking its newest such search
    had (a promoted embedding version starts a new history), with their clicks; None without any."""
    rows = s.execute(select(Search.id, Search.kind, Search.created_at, Search.ranking)
                     .where(Search.app_id == app_id, Search.created_at < settled_before)
                     .order_by(Search.created_at.desc(), Search.id.desc()).limit(MAX_SEARCHES)).all()
    if not rows:
        return None
    ranking = _ranking_version(rows[0].ranking)
    same: list[tuple[str, str, dt.datetime]] = []
    for r in rows:
        if _ranking_version(r.ranking) != ranking:
            break
        same.append((r.id, r.kind, as_utc(r.created_at)))
    same.reverse()
    clicks: dict[str, list[int]] = {}
    for start in range(0, len(same), 500):
        chunk = [sid for sid, _, _ in same[start:start + 500]]
        for sid, rank in s.execute(select(FeedbackEvent.search_id, FeedbackEvent.rank)
                                   .where(FeedbackEvent.app_id == app_id, FeedbackEvent.event_type == EventType.SEARCH_CLICK,
                                          FeedbackEvent.search_id.in_(chunk), FeedbackEvent.rank.is_not(None))
                                   .order_by(FeedbackEvent.seq)):
            if sid is not None and rank is not None:  # both are in the WHERE; the columns are nullable
                clicks.setdefault(sid, []).append(rank)
    return SearchWindow(ranking, [SearchRecord(sid, kind, clicks.get(sid, [])) for sid, kind, _ in same],
                        [t for _, _, t in same])


def _outputs_of(app_id: str, model_pk: int, since: dt.datetime | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [Output.app_id == app_id, Output.model_pk == model_pk]
    if since is not None:
        where.append(Output.created_at >= since)
    return where


def _verdicts_of(app_id: str, model_pk: int, since: dt.datetime | None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [FeedbackEvent.app_id == app_id, FeedbackEvent.model_pk == model_pk,
                           FeedbackEvent.event_type == EventType.ANNOTATION]
    if since is not None:
        where.append(FeedbackEvent.created_at >= since)
    return where


def _ranking_version(ranking: str | None) -> str:
    """The embedding version of a search's ranking ('<version>' or '<version>+memory')."""
    return (ranking or "").split("+")[0]
