"""What a server process counts for Prometheus: every metric is defined here, and each call site
records with one line (``METRICS.searched(kind)``).

Why one instance per process (:data:`METRICS`) rather than one per :class:`~visionloop.core.VisionLoop`:
Prometheus scrapes processes, and the parts that count (the dynamic batcher of the shared model
runtime, the feedback log's group commit) serve every VisionLoop of a process. The metrics sit
on a registry of their own, not prometheus-client's global one, and the HTTP layer exposes them
together with the figures it reads from the database at scrape time (:mod:`visionloop.http.metrics`).

Labels are bounded by construction: HTTP routes by their template, model labels by the built-in
catalog (an app's own model counts under ``app:<model type>``), search kinds by the query's term
kinds, feedback by the wire's own event types and verdicts. No label names an input, a user, a key
or an app.

Counting takes prometheus-client's per-value lock for an addition: nothing that serialises
requests or the event loop. See docs/monitoring.md for every metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics import MetricWrapperBase

from visionloop import status
from visionloop.learning.vocabulary import EventKind

# Powers of two up to the largest forward and group-commit batch.
_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_TRAINING_SECONDS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
_TRAINING_STATES = {status.MODEL_TRAINED: "trained", status.MODEL_TRAINING_INSUFFICIENT_DATA: "insufficient_data",
                    status.MODEL_TRAINING_FAILED: "failed"}
_VERDICT = {True: "positive", False: "negative"}


class ModelLike(Protocol):
    app_id: str
    id: str
    model_type: str


class Metrics:
    """The metrics and the one-line recorders the services call."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter("visionloop_http_requests", "HTTP requests answered, by method, route template "
                                     "and status code.", ["method", "route", "status"], registry=r)
        self.http_seconds = Histogram("visionloop_http_request_duration_seconds", "Time from a request's arrival to "
                                      "the end of its response, by method and route template.", ["method", "route"],
                                      buckets=_SECONDS, registry=r)
        self.images_predicted = Counter("visionloop_images_predicted", "Images predicted on (each input of a predict "
                                        "call that got a prediction), by model: a built-in model's id, or "
                                        "app:<model type> for an app's own models.", ["model"], registry=r)
        self.feedback_events = Counter("visionloop_feedback_events", "Feedback events stored (retries within the "
                                       "dedup window not counted), by type: concepts, regions, search_click.",
                                       ["type"], registry=r)
        self.feedback_verdicts = Counter("visionloop_feedback_verdicts", "Verdicts in stored feedback events: type "
                                         "concept (verdict positive or negative) or region (accurate, misplaced, "
                                         "not_detected, false_positive); an event judging three concepts counts "
                                         "three.", ["type", "verdict"], registry=r)
        self.feedback_duplicates = Counter("visionloop_feedback_duplicates", "Feedback requests answered with an "
                                           "event already stored (a retry within the dedup window).", registry=r)
        self.searches = Counter("visionloop_searches", "Searches made, by kind (the query's term kinds joined by '+', "
                                "e.g. visual, predicted, annotated+visual).", ["kind"], registry=r)
        self.search_clicks = Counter("visionloop_search_clicks", "Search clicks stored, by the kind of the search "
                                     "clicked in (unknown: the search id is not known here).", ["kind"], registry=r)
        self.training_jobs = Counter("visionloop_training_jobs_finished", "Training jobs this process finished, by "
                                     "outcome: trained, insufficient_data, failed.", ["state"], registry=r)
        self.training_seconds = Histogram("visionloop_training_duration_seconds", "How long finished training jobs "
                                          "took, by outcome.", ["state"], buckets=_TRAINING_SECONDS, registry=r)
        self.dynamic_batch = Histogram("visionloop_dynamic_batch_images", "Images per forward pass of the dynamic "
                                       "batcher (several requests' images when they share one).", buckets=_SIZES,
                                       registry=r)
        self.feedback_commit_batch = Histogram("visionloop_feedback_commit_batch_events", "Feedback events written "
                                               "per transaction of the group commit.", buckets=_SIZES, registry=r)

        # labelled children by (metric, labels): labels() validates and locks on every call, a dict does not
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}

    def child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once (label sets are bounded, so is this dict)."""
        key = (metric, labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def predicted(self, model: ModelLike, images: int) -> None:
        self.child(self.images_predicted, f"app:{model.model_type}" if model.app_id else model.id).inc(images)

    def feedback_stored(self, normalized: Mapping[str, Any], duplicate: bool) -> None:
        """Count one feedback event as the log stored it (``normalized``: see services/feedback/record.py)."""
        if duplicate:
            self.feedback_duplicates.inc()
            return
        kind = normalized.get("kind", "")
        self.child(self.feedback_events, kind).inc()
        if kind == EventKind.SEARCH_CLICK:
            self.child(self.search_clicks, normalized.get("search_kind") or "unknown").inc()
        for concept in normalized.get("concepts") or ():
            self.child(self.feedback_verdicts, "concept", _VERDICT[bool(concept.get("value"))]).inc()
        for region in normalized.get("regions") or ():
            self.child(self.feedback_verdicts, "region", region["feedback"]).inc()

    def searched(self, kind: str) -> None:
        self.child(self.searches, kind).inc()

    def trained(self, status_code: int, seconds: float) -> None:
        """A training job ended with this version status code (other codes: not a finished job)."""
        state = _TRAINING_STATES.get(status_code)
        if state is not None:
            self.child(self.training_jobs, state).inc()
            self.child(self.training_seconds, state).observe(seconds)


METRICS = Metrics()
