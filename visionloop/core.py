"""The visionloop object: settings in, storage and services out. Built by ``serve``, the CLI and tests.

No import-time globals: every engine, store and model lives on one instance, created explicitly
and closed explicitly.
"""

from __future__ import annotations

import datetime as dt
import sys

from visionloop.config import Settings
from visionloop.inference.backbone import EMBEDDING_DIM
from visionloop.inference.batching import BatchPolicy
from visionloop.inference.runtime import ModelRuntime
from visionloop.services.apps import SCOPES, AppService, KeyInfo, Secret
from visionloop.services.click_memory import ClickMemoryService, MemorySettings
from visionloop.services.concepts import ConceptService
from visionloop.services.console import ConsoleService
from visionloop.services.embedding_gc import EmbeddingCollector
from visionloop.services.feedback import FeedbackService
from visionloop.services.feedback.log import Erasure
from visionloop.services.fetch import ImageFetcher
from visionloop.services.image_source import ImageLoader
from visionloop.services.indexing import InputAnalyzer
from visionloop.services.input_images import InputImages
from visionloop.services.inputs import InputService
from visionloop.services.models import ModelService
from visionloop.services.monitoring import AlarmService, AlarmSettings
from visionloop.services.monitoring.figures import MonitoringService
from visionloop.services.monitoring.loop import AlarmLoop
from visionloop.services.monitoring.webhook import Outbox, Webhook
from visionloop.services.predict import EMBEDDING_SPACE, PredictService
from visionloop.services.search import SearchService
from visionloop.services.training.service import LearningService
from visionloop.services.training.worker import TrainingWorker
from visionloop.services.usage import UsageService
from visionloop.store.app_indexes import AppIndexes
from visionloop.store.blobs import BlobStore, FileBlobStore
from visionloop.store.db import Database, exclusive
from visionloop.store.migrate import upgrade
from visionloop.store.pg_vectors import PgVectorStore
from visionloop.store.s3_blobs import S3BlobStore
from visionloop.store.tables import utcnow
from visionloop.store.vector_store import VectorStore

DEFAULT_APP = "main"


class CopyProgress:
    """Progress of a long copy (embeddings into pgvector, blobs into S3) or sweep, on stderr, every 5%."""

    def __init__(self, what: str, doing: str = "copying") -> None:
        self.what = what
        self.doing = doing
        self.shown = -5

    def __call__(self, done: int, total: int) -> None:
        percent = done * 100 // max(total, 1)
        if percent >= self.shown + 5 or done >= total:
            print(f"visionloop: {self.doing} {self.what}: {done}/{total} ({percent}%)", file=sys.stderr, flush=True)
            self.shown = percent


def batch_policy(settings: Settings) -> BatchPolicy:
    return BatchPolicy(max_size=settings.dynamic_batch_max, wait_s=settings.dynamic_batch_wait_ms / 1000)


class VisionLoop:
    def __init__(self, settings: Settings, runtime: ModelRuntime | None = None) -> None:
        self.settings = settings
        # A runtime passed in (tests share one per session) keeps its own batching policy.
        self.runtime = runtime or ModelRuntime(threads=settings.inference_threads or None,
                                               batching=batch_policy(settings))
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.db_url)
        upgrade(self.db.engine)
        self.blobs: BlobStore = (S3BlobStore(settings.blob_url) if settings.blob_store == "s3"
                                 else FileBlobStore(settings.data_dir / "blobs"))
        self.fetcher = ImageFetcher(timeout=settings.fetch_timeout, max_bytes=settings.max_image_bytes,
                                    max_redirects=settings.fetch_max_redirects, allow=settings.fetch_allow_hosts)
        self.loader = ImageLoader(self.fetcher, max_bytes=settings.max_image_bytes,
                                  max_pixels=settings.max_image_pixels)
        self.apps = AppService(self.db)
        self.concepts = ConceptService(self.db)
        self.models = ModelService(self.db, self.runtime)
        self.indexes: VectorStore = self._vector_store()
        self.embeddings = EmbeddingCollector(self.db, retention_days=settings.output_retention_days)
        self.inputs = InputService(self.db, self.blobs, self.loader, InputAnalyzer(self.models), self.indexes,
                                   max_batch=settings.max_batch, embeddings=self.embeddings)
        self.input_images = InputImages(self.inputs, self.blobs)
        self.predict = PredictService(self.db, self.blobs, self.loader, self.models, max_batch=settings.max_batch,
                                      embeddings=self.embeddings)
        self.usage = UsageService(self.db)
        self.console = ConsoleService(self.db)
        self.monitoring = MonitoringService(self.db, EMBEDDING_SPACE)
        self.feedback = FeedbackService(self.db, self.models, rate_limit=settings.feedback_rate_limit,
                                        dedup_seconds=settings.feedback_dedup_seconds,
                                        retention_days=settings.feedback_retention_days,
                                        require_link=settings.feedback_require_link)
        memory = ClickMemoryService(self.db, MemorySettings(
            strength=settings.search_memory_strength, half_life_days=settings.search_memory_half_life_days,
            duplicate_cosine=settings.search_memory_duplicate_cosine,
            neighbour_weight=settings.search_memory_neighbour_weight))
        self.search = SearchService(self.db, self.inputs, self.models, self.loader, self.indexes, memory,
                                    explore_rate=settings.search_explore_rate)
        self.learning = LearningService(self.db, self.blobs, self.models, self.runtime,
                                        blend_k=settings.learning_blend_k)
        self.feedback.log.erasure_hooks.append(self.learning.on_erasure)
        self.webhook = Outbox(Webhook(self.fetcher, settings.alarm_webhook_url, settings.alarm_webhook_secret)) \
            if settings.alarm_webhook_url else None
        self.alarms = AlarmService(self.db, AlarmSettings.of(settings), notify=self.webhook)
        self.feedback.log.erasure_hooks.append(self._prune_erased_outputs)
        self.feedback.log.erasure_hooks.append(self._collect_erased_embeddings)  # after the outputs they kept
        self.worker: TrainingWorker | None = None
        self.alarm_loop: AlarmLoop | None = None

    def _prune_erased_outputs(self, erasure: Erasure) -> None:
        """Outputs past the output retention were kept only for their feedback: once it is erased
        they go at once (with their images, when nothing else names them), as a prune would take them."""
        days = self.settings.output_retention_days
        if days > 0 and erasure.output_ids:
            self.predict.prune(utcnow() - dt.timedelta(days=days), erasure.output_ids)

    def _collect_erased_embeddings(self, erasure: Erasure) -> None:
        """The embeddings only the erased events kept (their images; a search's query and hit images
        while it was clicked) go with them."""
        self.embeddings.collect(erasure.digests | self.embeddings.of_searches(erasure.search_ids))

    def _vector_store(self) -> VectorStore:
        settings = self.settings
        if settings.vector_store == "embedded":
            return AppIndexes(self.db, settings.data_dir / "indexes", EMBEDDING_SPACE, EMBEDDING_DIM)
        store = PgVectorStore(self.db, EMBEDDING_SPACE, EMBEDDING_DIM, ef_search=settings.pgvector_ef_search)
        store.prepare(CopyProgress("embeddings into pgvector"))  # before any search: every embedding is there
        return store

    def start_worker(self) -> None:
        """Train and check alarms in the background (the server does; tests and the CLI do both inline)."""
        self.worker = TrainingWorker(self.learning, retrain_after_events=self.settings.retrain_after_events,
                                     check_seconds=self.settings.retrain_check_seconds)
        self.worker.start()
        if self.settings.alarm_check_seconds > 0:
            self.alarm_loop = AlarmLoop(self.alarms, self.settings.alarm_check_seconds)
            self.alarm_loop.start()

    def bootstrap(self) -> tuple[KeyInfo, Secret] | None:
        """On a first start with no key at all, create the default app and one full-scope key
        (once, even when several processes start together on one PostgreSQL)."""
        with exclusive(self.db.engine, "visionloop:bootstrap"):
            if self.apps.has_keys():
                return None
            if DEFAULT_APP not in {a.id for a in self.apps.list_apps()}:
                self.apps.create_app(DEFAULT_APP, "Default app")
            return self.apps.create_key(DEFAULT_APP, SCOPES, description="created on first start")

    def __enter__(self) -> VisionLoop:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stop()
        if self.alarm_loop is not None:
            self.alarm_loop.stop()
        if self.webhook is not None:
            self.webhook.close()
        self.inputs.close()
        self.indexes.close()
        self.fetcher.close()
        self.db.dispose()
