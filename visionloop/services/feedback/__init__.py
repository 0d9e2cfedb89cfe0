"""Feedback: what applications say about predictions and searches, kept as an append-only log.

- :mod:`.parse` turns request bodies into validated values (total: parses or raises ApiError);
- :mod:`.concepts` and :mod:`.regions` resolve concepts and tie regions to predicted regions;
- :mod:`.record` checks feedback against its output or search, normalises and appends it
  (the status codes are tabled there);
- :mod:`.log` is the log itself: dedup on write, filtered reads, erasure and retention.

Feedback is never metered as usage; it is rate limited separately (:mod:`visionloop.services.ratelimit`).
"""

from __future__ import annotations

from typing import Any

from visionloop.services.apps import Caller
from visionloop.services.feedback.log import Appended, Erasure, ErasureHook, FeedbackFilter, FeedbackLog, parse_time
from visionloop.services.feedback.parse import parse_event_type, parse_model_feedback, parse_search_feedback
from visionloop.services.feedback.record import FeedbackRecorder, raw_body
from visionloop.services.models import ModelService
from visionloop.services.ratelimit import RateLimiter
from visionloop.store.db import Database

__all__ = ["Appended", "Erasure", "ErasureHook", "FeedbackFilter", "FeedbackService"]


class FeedbackService:
    """The feedback endpoints' one entry point: throttle, parse, record; and the log for operators."""

    def __init__(self, db: Database, models: ModelService, *, rate_limit: float, dedup_seconds: int,
                 retention_days: int, require_link: bool = False) -> None:
        self.models = models
        self.log = FeedbackLog(db, dedup_seconds=dedup_seconds, retention_days=retention_days)
        self.recorder = FeedbackRecorder(db, models, self.log, require_link=require_link)
        self.limiter = RateLimiter(rate_limit, db=db, name="feedback", what="feedback requests")

    def model_feedback(self, caller: Caller, model_ref: str, version_id: str | None, body: Any) -> Appended:
        self.limiter.check(caller.app_id, caller.key_id)
        raw = raw_body(body)
        return self.recorder.record_model(caller, model_ref, version_id, parse_model_feedback(body), raw)

    def search_feedback(self, caller: Caller, body: Any) -> Appended:
        self.limiter.check(caller.app_id, caller.key_id)
        raw = raw_body(body)
        return self.recorder.record_search(caller, parse_search_feedback(body), raw)

    def filter_of(self, app_id: str, *, model_id: str | None = None, version_id: str | None = None,
                  event_type: str | None = None, end_user_id: str | None = None, session_id: str | None = None,
                  output_id: str | None = None, search_id: str | None = None, created_after: str | None = None,
                  created_before: str | None = None) -> FeedbackFilter:
        """The log filter that query parameters describe (empty means no filter); a bad value is
        refused naming its parameter."""
        return FeedbackFilter(model_pk=self.models.get(app_id, model_id).model.pk if model_id else None,
                              version_id=version_id or None, event_type=parse_event_type(event_type, "event_type"),
                              end_user_id=end_user_id or None, session_id=session_id or None,
                              output_id=output_id or None, search_id=search_id or None,
                              created_after=parse_time(created_after, "created_after"),
                              created_before=parse_time(created_before, "created_before"))
