"""Alarms per app and model: input drift, feedback quality per concept, search CTR and MRR per
query kind (docs/alarms.md). :meth:`AlarmService.check` judges an app's windows and keeps what
fired in the ``alarms`` table; :meth:`AlarmService.list` and :meth:`AlarmService.firing` read it.

A model's history starts at its promotion (its ``active_versions`` row): a new version resets the
baseline, and its alarms resolve, since what they said was about the version replaced.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import enum
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from visionloop.config import Settings
from visionloop.ids import new_id
from visionloop.learning.alarm_checks import Check, mean_drop, proportion_shift
from visionloop.learning.drift import mmd_test
from visionloop.learning.hysteresis import AlarmState, Track, step
from visionloop.learning.metrics_search import distinct_clicks
from visionloop.services.feedback.log import as_utc
from visionloop.services.monitoring import windows
from visionloop.services.paging import Page
from visionloop.store.db import Database
from visionloop.store.tables import Alarm, App, Model, utcnow

log = logging.getLogger("visionloop.alarms")
MAX_REFERENCES_KEPT = 64  # training references kept in memory (app, model, version): a megabyte each


class AlarmKind(enum.StrEnum):
    INPUT_DRIFT = "input_drift"
    FEEDBACK_QUALITY = "feedback_quality"
    SEARCH_CTR = "search_ctr"
    SEARCH_MRR = "search_mrr"


@dataclasses.dataclass(frozen=True)
class AlarmSettings:
    drift_reference: int = 200
    drift_window: int = 100
    drift_alpha: float = 0.001
    feedback_window: int = 50
    search_window: int = 100
    search_settle_seconds: float = 600.0
    min_events: int = 20
    alpha: float = 0.01
    retention_days: float = 0.0  # outputs older are pruned, but for those feedback refers to (0: none are)

    @classmethod
    def of(cls, settings: Settings) -> AlarmSettings:
        return cls(drift_reference=settings.alarm_drift_reference, drift_window=settings.alarm_drift_window,
                   drift_alpha=settings.alarm_drift_alpha, feedback_window=settings.alarm_feedback_window,
                   search_window=settings.alarm_search_window,
                   search_settle_seconds=settings.alarm_search_settle_seconds,
                   min_events=settings.alarm_min_events, alpha=settings.alarm_alpha,
                   retention_days=settings.output_retention_days)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One check of one alarm's subject: its verdict and the times of the recent window's events."""

    kind: AlarmKind
    model_pk: int | None
    subject: str | None
    subject_name: str | None
    baseline: str
    check: Check
    times: Sequence[dt.datetime]


@dataclasses.dataclass(frozen=True)
class FiringAlarm:
    """A firing alarm, as a metrics gauge labels it."""

    app_id: str
    model_id: str | None
    kind: str
    concept: str | None  # a concept id (feedback quality) or a query kind (search alarms)


Notify = Callable[[list[dict[str, Any]]], None]


class AlarmService:
    def __init__(self, db: Database, settings: AlarmSettings, notify: Notify | None = None) -> None:
        self.db = db
        self.settings = settings
        self.notify = notify  # called with the wire form of alarms that fired or resolved, after commit
        # what each model's last stored drift and quality checks judged: a model with nothing new is
        # skipped; ``_judged``: what the check under way judged, seen once its outcome is committed
        self._seen: dict[tuple[str, str, int], tuple[object, str]] = {}
        self._judged: dict[tuple[str, str, int], tuple[object, str]] = {}
        self._references: dict[tuple[str, int, str], np.ndarray | None] = {}

    # -- checking -----------------------------------------------------------------------------------
    def check_all(self) -> int:
        """Check every app; returns how many alarms changed state."""
        with self.db.session() as s:
            apps = list(s.scalars(select(App.id)))
        changed = 0
        for app_id in apps:
            try:
                changed += len(self.check(app_id))
            except Exception:
                log.exception("alarm check of app %s failed", app_id)
        return changed

    def check(self, app_id: str, now: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Judge the app's windows and store the outcome; the alarms that fired or resolved (wire form)."""
        now = now or utcnow()
        self._judged = {}
        with self.db.session() as s:
            bases = windows.baselines(s, app_id)
            models = windows.models_of(s, app_id)
            findings: list[Finding] = []
            for pk in models:
                base = bases.get(pk, windows.Baseline(None, None))
                findings += self._drift(s, app_id, pk, base, now) + self._quality(s, app_id, pk, base)
            findings += self._search(s, app_id, now)
        changed: list[Alarm] = []
        with self.db.transaction() as s:
            stored = {(a.kind, a.model_pk, a.subject): a for a in s.scalars(select(Alarm).where(Alarm.app_id == app_id))}
            for f in findings:
                key = (f.kind, f.model_pk, f.subject)
                alarm, moved = self._apply(s, app_id, stored.get(key), f, now)
                if alarm is not None:
                    stored[key] = alarm
                    if moved:
                        changed.append(alarm)
            for alarm in stored.values():  # a promoted version resets its model's baseline; a deleted model has none
                if (alarm.state == AlarmState.FIRING and alarm.model_pk is not None
                        and (alarm.model_pk not in models
                             or alarm.baseline != bases.get(alarm.model_pk, windows.Baseline(None, None)).key)):
                    alarm.state, alarm.since, alarm.updated_at = AlarmState.RESOLVED.value, now, now
                    changed.append(alarm)
            s.flush()
            out = self._wire(s, changed)
        self._seen.update(self._judged)
        if out and self.notify is not None:
            self.notify(out)
        return out

    @staticmethod
    def _apply(s: Session, app_id: str, alarm: Alarm | None, f: Finding, now: dt.datetime) -> tuple[Alarm | None, bool]:
        """Step the alarm's hysteresis with one finding: the alarm (None: never fired), and whether
        it fired or resolved."""
        track = None
        if alarm is not None and alarm.baseline == f.baseline:
            track = Track(AlarmState(alarm.state), as_utc(alarm.last_outside))
        since_outside = sum(t > track.last_outside for t in f.times) if track is not None else 0
        after = step(track, outside=f.check.outside, newest=max(f.times), events_since_outside=since_outside,
                     window=len(f.times))
        if after is None and alarm is not None and alarm.state == AlarmState.FIRING:  # its baseline was replaced
            after = Track(AlarmState.RESOLVED, as_utc(alarm.last_outside))
        if after is None:
            return alarm, False
        if alarm is None:
            alarm = Alarm(id=new_id(), app_id=app_id, kind=f.kind.value, model_pk=f.model_pk, subject=f.subject,
                          state=AlarmState.RESOLVED.value, since=now)
            s.add(alarm)
        changed = alarm.state != after.state or (alarm.baseline != f.baseline and after.state is AlarmState.FIRING)
        if changed:
            alarm.since = now
        alarm.state, alarm.last_outside, alarm.baseline = after.state.value, after.last_outside, f.baseline
        alarm.subject_name = f.subject_name
        alarm.figure, alarm.threshold, alarm.evidence = f.check.figure, f.check.threshold, f.check.evidence
        alarm.p_value, alarm.updated_at = f.check.p_value, now
        return alarm, changed

    def _drift(self, s: Session, app_id: str, model_pk: int, base: windows.Baseline,
               now: dt.datetime) -> list[Finding]:
        cfg = self.settings
        since = base.since
        if cfg.retention_days:  # past the horizon, pruning left only judged outputs: no sample of traffic
            horizon = now - dt.timedelta(days=cfg.retention_days)
            since = max(since, horizon) if since is not None else horizon
        newest = windows.newest_output(s, app_id, model_pk, since)
        if newest is None or not self._new(AlarmKind.INPUT_DRIFT, app_id, model_pk, newest, base):
            return []
        trained = self._training_reference(s, app_id, model_pk, base)
        seen = windows.traffic(s, app_id, model_pk, since, recent=cfg.drift_window,
                               reference=trained if trained is not None else cfg.drift_reference)
        if seen is None:
            return []
        check = mmd_test(seen.reference, seen.recent, alpha=cfg.drift_alpha, seed=int(newest.timestamp() * 1e6))
        return [Finding(AlarmKind.INPUT_DRIFT, model_pk, None, None, base.key, check, seen.recent_times)]

    def _training_reference(self, s: Session, app_id: str, model_pk: int, base: windows.Baseline) -> np.ndarray | None:
        """The active version's training images' embeddings, read once per version (they do not change)."""
        key = (app_id, model_pk, base.key)
        if key not in self._references:
            if len(self._references) >= MAX_REFERENCES_KEPT:
                self._references.clear()
            self._references[key] = windows.training_reference(s, app_id, model_pk, base, self.settings.drift_reference)
        return self._references[key]

    def _quality(self, s: Session, app_id: str, model_pk: int, base: windows.Baseline) -> list[Finding]:
        cfg, out = self.settings, []
        newest = windows.newest_verdict(s, app_id, model_pk)
        if newest is None or not self._new(AlarmKind.FEEDBACK_QUALITY, app_id, model_pk, newest, base):
            return []
        for concept_id, v in windows.concept_verdicts(s, app_id, model_pk, base.since).items():
            n = cfg.feedback_window
            recent, past = v.negative[-n:], v.negative[:-n]
            check = proportion_shift(sum(recent), len(recent), sum(past), len(past), rise=True, alpha=cfg.alpha,
                                     min_events=max(cfg.min_events, 1)) if len(recent) == n else None
            if check is not None:
                out.append(Finding(AlarmKind.FEEDBACK_QUALITY, model_pk, concept_id, v.name, base.key, check,
                                   v.times[-n:]))
        return out

    def _new(self, kind: AlarmKind, app_id: str, model_pk: int, newest: object, base: windows.Baseline) -> bool:
        """Whether the model has events (or a baseline) its last check of ``kind`` did not see."""
        key, seen = (kind.value, app_id, model_pk), (newest, base.key)
        if self._seen.get(key) == seen:
            return False
        self._judged[key] = seen
        return True

    def _search(self, s: Session, app_id: str, now: dt.datetime) -> list[Finding]:
        cfg = self.settings
        window = windows.search_window(s, app_id, now - dt.timedelta(seconds=cfg.search_settle_seconds))
        if window is None:
            return []
        by_kind: dict[str, list[tuple[bool, float, dt.datetime]]] = {}
        for record, at in zip(window.records, window.times):
            clicks = distinct_clicks(record)
            by_kind.setdefault(record.kind, []).append((bool(clicks), 1.0 / clicks[0] if clicks else 0.0, at))
        out = []
        n = cfg.search_window
        for kind, rows in sorted(by_kind.items()):
            if len(rows) < n:
                continue
            recent, past, times = rows[-n:], rows[:-n], [at for _, _, at in rows[-n:]]
            ctr = proportion_shift(sum(c for c, _, _ in recent), n, sum(c for c, _, _ in past), len(past), rise=False,
                                   alpha=cfg.alpha, min_events=max(cfg.min_events, 1))
            mrr = mean_drop([r for _, r, _ in recent], [r for _, r, _ in past], alpha=cfg.alpha,
                            min_events=max(cfg.min_events, 2))
            out += [Finding(k, None, kind, None, window.ranking, c, times)
                    for k, c in ((AlarmKind.SEARCH_CTR, ctr), (AlarmKind.SEARCH_MRR, mrr)) if c is not None]
        return out

    # -- reading ------------------------------------------------------------------------------------
    def list(self, app_id: str, page: Page, state: str | None = None) -> list[dict[str, Any]]:
        """The app's alarms, firing first, then the most recent change first."""
        query = select(Alarm).where(Alarm.app_id == app_id)
        if state is not None:
            query = query.where(Alarm.state == state)
        with self.db.session() as s:
            rows = list(s.scalars(query.order_by(Alarm.state != AlarmState.FIRING.value, Alarm.since.desc(), Alarm.id)
                                  .offset(page.offset).limit(page.per_page)))
            return self._wire(s, rows)

    def firing(self, app_id: str | None = None) -> builtins.list[FiringAlarm]:
        """Every firing alarm (of one app, or of all): what a metrics gauge counts."""
        query = (select(Alarm.app_id, Model.id, Alarm.kind, Alarm.subject)
                 .outerjoin(Model, Model.pk == Alarm.model_pk).where(Alarm.state == AlarmState.FIRING.value))
        if app_id is not None:
            query = query.where(Alarm.app_id == app_id)
        with self.db.session() as s:
            return [FiringAlarm(*row) for row in s.execute(query.order_by(Alarm.app_id, Alarm.kind, Alarm.id))]

    @staticmethod
    def _wire(s: Session, alarms: Sequence[Alarm]) -> builtins.list[dict[str, Any]]:
        pks = {a.model_pk for a in alarms if a.model_pk is not None}
        model_ids = {pk: mid for pk, mid in s.execute(select(Model.pk, Model.id).where(Model.pk.in_(pks)))} if pks else {}
        return [alarm_json(a, model_ids.get(a.model_pk) if a.model_pk is not None else None) for a in alarms]


def alarm_json(alarm: Alarm, model_id: str | None) -> dict[str, Any]:
    """An alarm as ``GET /v2/alarms`` and the webhook show it."""
    concept = {"id": alarm.subject, "name": alarm.subject_name or alarm.subject} \
        if alarm.kind == AlarmKind.FEEDBACK_QUALITY else None
    return {"id": alarm.id, "app_id": alarm.app_id, "kind": alarm.kind, "state": alarm.state,
            "since": _iso(alarm.since), "figure": alarm.figure, "threshold": alarm.threshold,
            "evidence_count": alarm.evidence, "p_value": alarm.p_value,
            "model": {"id": model_id} if model_id is not None else None, "concept": concept,
            "query_kind": alarm.subject if alarm.kind in (AlarmKind.SEARCH_CTR, AlarmKind.SEARCH_MRR) else None,
            "baseline": alarm.baseline, "updated_at": _iso(alarm.updated_at)}


def _iso(value: dt.datetime) -> str:
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
