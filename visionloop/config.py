"""Settings: one table of (name, default, help), read from ``VISIONLOOP_*`` environment variables.

The table is the documentation: ``visionloop settings`` prints it, the README lists it, and a
test fails if the two disagree. Nothing is read at import time; :func:`load_settings` builds an
immutable :class:`Settings` that the app factory and the CLI pass down explicitly.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from visionloop.inference.batching import BatchPolicy


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str

    @property
    def env(self) -> str:
        return "VISIONLOOP_" + self.name.upper()


SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", "./data", "Folder for the SQLite database, image blobs and vector indexes."),
    Setting("database_url", "", "SQLAlchemy URL; empty means SQLite (WAL) at DATA_DIR/visionloop.db. "
            "Example: postgresql+psycopg://user:pass@host/db"),
    Setting("max_body_bytes", 160 * 1024 * 1024, "Largest accepted request body, in bytes (413 above)."),
    Setting("max_image_bytes", 20 * 1024 * 1024, "Largest accepted image, in bytes (Clarifai's limit)."),
    Setting("max_image_pixels", 40_000_000, "Largest accepted image area in pixels (decompression bombs)."),
    Setting("fetch_timeout", 10.0, "Seconds allowed for fetching one image URL."),
    Setting("fetch_allow_hosts", "", "Comma-separated hosts or CIDR ranges that image URLs may reach even "
            "though they are loopback/private (for tests and intranets)."),
    Setting("fetch_max_redirects", 3, "Redirects followed when fetching an image URL."),
    Setting("max_batch", 128, "Most inputs in one inputs or predict call (Clarifai's own limit)."),
    Setting("dynamic_batch_max", BatchPolicy.max_size, "Most images in one forward pass shared by concurrent "
            "requests (predicts, input adds, search queries); 1 turns dynamic batching off. Not MAX_BATCH, the most "
            "inputs one request may carry. See docs/serving.md."),
    Setting("dynamic_batch_wait_ms", BatchPolicy.wait_s * 1000, "Longest a request queued behind a running forward "
            "waits for others to join its forward, in milliseconds; a request that finds the network idle runs at "
            "once."),
    Setting("inference_threads", 0, "Threads each network's forward pass may use (onnxruntime's intra-op threads); "
            "0 means one per core. See docs/serving.md."),
    Setting("request_threads", 40, "Threads that run the API's blocking work (predicts, input adds, searches): "
            "the event loop's thread pool. See docs/serving.md."),
    Setting("max_per_page", 1000, "Cap on per_page for every list."),
    Setting("default_per_page", 128, "per_page when a list request does not say."),
    Setting("feedback_rate_limit", 100.0, "Feedback requests per second per API key (token bucket, bursts of 10 "
            "seconds' worth; an app's keys together get 5x); above it 11005 / HTTP 429. 0 disables. One limit for "
            "every process on the database."),
    Setting("feedback_dedup_seconds", 600, "A retry of the latest feedback (the same statement on the same output "
            "or search by the same end user and session) within this many seconds is stored once. 0 stores every "
            "retry."),
    Setting("feedback_retention_days", 0, "Feedback older than this many days is deleted by "
            "'visionloop feedback prune'; 0 keeps feedback forever."),
    Setting("feedback_require_link", False, "Refuse feedback whose output_id or search_id is unknown here "
            "(404, as before Clarifai compatibility); off stores it as unlinked feedback, which Clarifai accepted."),
    Setting("output_retention_days", 0, "Predict outputs older than this many days, and not referred to by "
            "any feedback, are deleted by 'visionloop outputs prune' (and when an end user's erasure removes "
            "their last feedback), with the images and stored embeddings nothing else needs; unclicked "
            "searches older than this no longer keep their images' embeddings; 0 keeps outputs forever."),
    Setting("retrain_after_events", 100, "The server's training worker queues a new version of a model for an "
            "app once this many feedback events on it (concept or region feedback; search clicks for the search "
            "ranking) arrived since its last version; 0 disables."),
    Setting("retrain_check_seconds", 30.0, "How often the training worker looks for models due for retraining."),
    Setting("search_memory_strength", 10.0, "How far what users clicked for a query moves its hits the next time "
            "it is searched (in standard deviations of the candidates' scores, at full evidence); 0 turns the "
            "click memory off. See docs/search-learning.md."),
    Setting("search_memory_half_life_days", 30.0, "Age at which a click counts half in the click memory."),
    Setting("search_memory_duplicate_cosine", 0.97, "Query images at least this similar (embedding cosine) are "
            "one query for the click memory (near-duplicates share their clicks)."),
    Setting("search_memory_neighbour_weight", 0.2, "Weight of the clicks of the most similar remembered queries "
            "for a query nobody asked before (neighbourhood votes); 0 turns them off."),
    Setting("search_explore_rate", 0.0, "Share of first pages of search results on which one hit from just below "
            "the page is shown in positions 6-10, logged with its propensity; 0 (default) never explores."),
    Setting("public_base_url", "", "Where clients reach this server (https://host/prefix behind a proxy): stored "
            "inputs' image URLs are built from it, the console's links and redirects start with its path, and "
            "an https URL makes the console's cookies Secure; empty means the URL each request was made to."),
    Setting("console_session_hours", 12.0, "How long an operator console sign-in lasts before the session cookie "
            "expires and the console asks for the API key again."),
    Setting("vector_store", "embedded", "Where visual search finds similar images: 'embedded' (an in-memory index per "
            "process, built from the stored embeddings) or 'pgvector' (a vector column of the inputs table in "
            "PostgreSQL with pgvector, shared by every process). See docs/scaling.md."),
    Setting("pgvector_ef_search", 100, "pgvector's HNSW search breadth (hnsw.ef_search, at most 1000; raised to the "
            "hits a search needs): more is slower and misses fewer neighbours."),
    Setting("blob_store", "file", "Where image bytes are kept: 'file' (under DATA_DIR/blobs) or 's3' (an "
            "S3-compatible store at VISIONLOOP_BLOB_URL; endpoint and credentials from the standard AWS_ENDPOINT_URL, "
            "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION variables)."),
    Setting("blob_url", "", "The S3 bucket and key prefix of the 's3' blob store: s3://bucket/prefix."),
    Setting("metrics", "off", "GET /metrics in the Prometheus text format: 'off', 'token' (on the API port, only with "
            "'Authorization: Bearer' and VISIONLOOP_METRICS_TOKEN) or 'port' (open, on METRICS_HOST:METRICS_PORT, its "
            "own listener). See docs/monitoring.md."),
    Setting("metrics_token", "", "The bearer token that 'token' mode asks of a scraper (16 characters or more); "
            "never printed."),
    Setting("metrics_host", "127.0.0.1", "The address the 'port' mode's listener binds (0.0.0.0: every interface)."),
    Setting("metrics_port", 9464, "The port of the 'port' mode's listener; each process of a server needs its own."),
    Setting("learning_blend_k", 20.0, "Prior for a learned head's say against the base model's score where "
            "cross-validation could not choose it (weight n/(n+k) for a head trained on n labels); versions "
            "trained since cross-validated promotion choose each concept's weight from its own evidence."),
    Setting("alarm_check_seconds", 60.0, "How often the server's alarm check looks at every app's recent predict "
            "traffic, feedback and searches (input drift, feedback quality, search alarms; docs/alarms.md); 0 "
            "turns the check off."),
    Setting("alarm_drift_reference", 200, "Predictions of a model, the first since its active version was "
            "promoted, that input drift compares recent traffic with."),
    Setting("alarm_drift_window", 100, "The latest predictions of a model that input drift judges (and that must "
            "stay unremarkable for a drift alarm to resolve)."),
    Setting("alarm_drift_alpha", 0.001, "False-alarm rate of the input drift test per window of i.i.d. traffic "
            "(a permutation test: exact; at least 0.001)."),
    Setting("alarm_feedback_window", 50, "The latest verdicts on a concept that feedback quality judges against the "
            "concept's earlier verdicts."),
    Setting("alarm_search_window", 100, "The latest searches of a query kind that the search alarms (CTR, MRR) "
            "judge against the earlier ones."),
    Setting("alarm_search_settle_seconds", 600.0, "Searches younger than this are left out of the search alarms: "
            "their clicks may still come."),
    Setting("alarm_min_events", 20, "Fewest events in the recent window and in its history for feedback quality and "
            "search alarms to judge at all (no alarm on a handful)."),
    Setting("alarm_alpha", 0.01, "One-sided significance level of the feedback quality and search alarms, per "
            "window: the bound a recent figure must pass, given how many events stand behind it."),
    Setting("alarm_webhook_url", "", "POST each alarm that fires or resolves to this URL as JSON (SSRF-checked "
            "like image URLs, retried with backoff); empty sends nothing."),
    Setting("alarm_webhook_secret", "", "Key of the HMAC-SHA256 signature of each webhook body, sent as "
            "'X-Visionloop-Signature: sha256=<hex>'; empty sends unsigned bodies."),
)

_BY_NAME = {s.name: s for s in SETTINGS}


@dataclasses.dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    max_body_bytes: int
    max_image_bytes: int
    max_image_pixels: int
    fetch_timeout: float
    fetch_allow_hosts: tuple[str, ...]
    fetch_max_redirects: int
    max_batch: int
    dynamic_batch_max: int
    dynamic_batch_wait_ms: float
    inference_threads: int
    request_threads: int
    max_per_page: int
    default_per_page: int
    feedback_rate_limit: float
    feedback_dedup_seconds: int
    feedback_retention_days: int
    feedback_require_link: bool
    output_retention_days: int
    retrain_after_events: int
    retrain_check_seconds: float
    search_memory_strength: float
    search_memory_half_life_days: float
    search_memory_duplicate_cosine: float
    search_memory_neighbour_weight: float
    search_explore_rate: float
    public_base_url: str
    console_session_hours: float
    vector_store: str
    pgvector_ef_search: int
    blob_store: str
    blob_url: str
    learning_blend_k: float
    alarm_check_seconds: float
    alarm_drift_reference: int
    alarm_drift_window: int
    alarm_drift_alpha: float
    alarm_feedback_window: int
    alarm_search_window: int
    alarm_search_settle_seconds: float
    alarm_min_events: int
    alarm_alpha: float
    alarm_webhook_url: str
    alarm_webhook_secret: str
    metrics: str
    metrics_token: str
    metrics_host: str
    metrics_port: int

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'visionloop.db'}"


class SettingsError(ValueError):
    """A setting with a value that cannot be used; the message names the variable."""


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def _coerce(setting: Setting, raw: Any) -> Any:
    kind = type(setting.default)
    if kind is bool:  # bool("0") is True: read the usual words instead
        text = str(raw).strip().lower()
        if isinstance(raw, bool) or text in _TRUE + _FALSE:
            return raw if isinstance(raw, bool) else text in _TRUE
        raise SettingsError(f"{setting.env}={raw!r} is not a valid bool (1/0, true/false): {setting.help}")
    if isinstance(raw, kind) and not isinstance(raw, bool):
        return raw
    try:
        return kind(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"{setting.env}={raw!r} is not a valid {kind.__name__}: {setting.help}") from None


def load_settings(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Defaults, then ``VISIONLOOP_*`` variables, then explicit overrides (CLI flags, tests)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for s in SETTINGS:
        raw = env.get(s.env, s.default)
        values[s.name] = _coerce(s, raw)
    for name, raw in (overrides or {}).items():
        if name not in _BY_NAME:
            raise SettingsError(f"unknown setting {name!r}")
        if raw is not None:
            values[name] = _coerce(_BY_NAME[name], raw)
    for name in ("max_body_bytes", "max_image_bytes", "max_image_pixels", "max_batch", "dynamic_batch_max",
                 "request_threads", "max_per_page", "default_per_page", "alarm_drift_reference", "alarm_drift_window",
                 "alarm_feedback_window", "alarm_search_window", "alarm_min_events"):
        if values[name] <= 0:
            raise SettingsError(f"{_BY_NAME[name].env} must be positive, got {values[name]}")
    for name in ("dynamic_batch_wait_ms", "inference_threads", "feedback_rate_limit", "feedback_dedup_seconds",
                 "feedback_retention_days", "output_retention_days", "search_memory_strength",
                 "search_memory_neighbour_weight", "alarm_check_seconds", "alarm_search_settle_seconds"):
        if not values[name] >= 0:  # also refuses nan
            raise SettingsError(f"{_BY_NAME[name].env} must be 0 or more, got {values[name]}")
    for name, choices in (("vector_store", ("embedded", "pgvector")), ("blob_store", ("file", "s3")),
                          ("metrics", ("off", "token", "port"))):
        if values[name] not in choices:
            raise SettingsError(f"{_BY_NAME[name].env} must be one of {', '.join(choices)}, got {values[name]!r}")
    if not 1 <= values["pgvector_ef_search"] <= 1000:
        raise SettingsError(f"VISIONLOOP_PGVECTOR_EF_SEARCH must be from 1 to 1000, got {values['pgvector_ef_search']}")
    if values["metrics"] == "token" and len(values["metrics_token"]) < 16:
        raise SettingsError("VISIONLOOP_METRICS=token needs VISIONLOOP_METRICS_TOKEN of 16 characters or more "
                            "(e.g. from 'openssl rand -hex 24')")
    if values["metrics"] == "port" and values["metrics_token"]:
        raise SettingsError("VISIONLOOP_METRICS=port serves /metrics open on its own listener; unset "
                            "VISIONLOOP_METRICS_TOKEN, or use VISIONLOOP_METRICS=token to ask scrapers for it")
    if not 1 <= values["metrics_port"] <= 65535:
        raise SettingsError(f"VISIONLOOP_METRICS_PORT must be from 1 to 65535, got {values['metrics_port']}")
    if values["blob_store"] == "s3" and not str(values["blob_url"]).startswith("s3://"):
        raise SettingsError(f"VISIONLOOP_BLOB_STORE=s3 needs VISIONLOOP_BLOB_URL=s3://bucket/prefix, "
                            f"got {values['blob_url']!r}")
    for name in ("search_memory_half_life_days", "console_session_hours"):
        if not values[name] > 0:
            raise SettingsError(f"{_BY_NAME[name].env} must be positive, got {values[name]}")
    for name in ("search_memory_duplicate_cosine", "search_explore_rate"):
        if not 0 <= values[name] <= 1:
            raise SettingsError(f"{_BY_NAME[name].env} must be between 0 and 1, got {values[name]}")
    for name, least in (("alarm_drift_alpha", 0.001), ("alarm_alpha", 1e-9)):
        if not least <= values[name] < 1:
            raise SettingsError(f"{_BY_NAME[name].env} must be from {least:g} to below 1, got {values[name]}")
    hook = values["alarm_webhook_url"].strip()
    if hook and (urlsplit(hook).scheme not in ("http", "https") or not urlsplit(hook).netloc):
        raise SettingsError(f"VISIONLOOP_ALARM_WEBHOOK_URL={hook!r} must be an http:// or https:// URL")
    values["alarm_webhook_url"] = hook
    base = values["public_base_url"].strip().rstrip("/")
    if base and (urlsplit(base).scheme not in ("http", "https") or not urlsplit(base).netloc):
        raise SettingsError(f"{_BY_NAME['public_base_url'].env}={base!r} must be an http:// or https:// URL "
                            "such as https://vision.example.com")
    values["public_base_url"] = base
    values["data_dir"] = Path(values["data_dir"]).expanduser().resolve()
    values["fetch_allow_hosts"] = tuple(h.strip() for h in str(values["fetch_allow_hosts"]).split(",") if h.strip())
    return Settings(**values)
