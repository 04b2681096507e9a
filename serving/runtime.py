"""What one running app holds (settings, store, model, batcher) and its start-up and shut-down.

Start-up (from the app's lifespan): migrate or check the database, then load the model in a
background thread so /healthz answers at once and /readyz answers 503 until the model is loaded
and one warm-up batch has run. A model that fails to load turns /healthz to 503 as well.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool

from serving.api.auth import KeyStore
from serving.engine.batching import MicroBatcher, PredictorLike
from serving.engine.bundle import Bundle
from serving.engine.lang import language_detector, parse_languages
from serving.api.metrics import Metrics
from serving.api.scoring import ScoringService
from serving.settings import Settings
from serving.storage.db import check_at_head, make_engine, make_sessionmaker, upgrade
from serving.storage.writer import GroupWriter

log = logging.getLogger(__name__)

# Short and long, several scripts: the long one reaches the model window so buffers are sized once.
WARMUP_TEXTS = [
    "Welcome to RedNote!! Where are you from?",
    "欢迎欢迎，常来玩",
    "Bienvenida, amiga 🤗",
    "go back to TikTok",
    "مرحبا بكم في المجتمع",
    "ようこそ！" * 3,
    "Thank you all for being so kind to newcomers. " * 80,
]


class Runtime:
    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        bundle: Bundle | None = None,
        predictor: PredictorLike | None = None,
    ) -> None:
        if bundle is None and predictor is None:
            raise ValueError("give a bundle or a predictor")
        self.settings = settings
        self.metrics = metrics
        self.bundle = bundle
        self.predictor = predictor
        # Built here, not in the background, so unknown language codes stop the start-up.
        self.detect_language = language_detector(parse_languages(settings.languages), settings.lang_min_confidence)
        self.engine = make_engine(settings.database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.keys = KeyStore(self.sessions, settings.key_cache_seconds)
        self.writer = GroupWriter(self.sessions, model_name=self.model_name, model_version=self.model_version)
        self.batcher: MicroBatcher | None = None
        self.scoring: ScoringService | None = None
        self.ready = False
        self.load_error: str | None = None
        self._load_task: asyncio.Future[None] | None = None

    # --- lifecycle ---

    def prepare_database(self) -> None:
        if self.settings.migrate_on_start:
            upgrade(self.engine)
        else:
            check_at_head(self.engine)

    def load_model(self) -> None:
        """Build the predictor (unless one was given), warm it up, start the batcher."""
        try:
            if self.predictor is None:
                from serving.engine.predictor import Predictor

                assert self.bundle is not None
                log.info("loading %r with %d thread(s)", self.bundle, self.settings.threads)
                self.predictor = Predictor(self.bundle, threads=self.settings.threads)
            predictor = self.predictor
            predictor.predict_encoded(predictor.encode(WARMUP_TEXTS), batch_size=len(WARMUP_TEXTS))
            self.detect_language("warm up")
            batcher = MicroBatcher(
                predictor,
                max_batch_size=self.settings.max_batch_size,
                max_wait_ms=self.settings.max_wait_ms,
                max_queue=self.settings.max_queue,
                pool_batches=self.settings.pool_batches,
                batch_overhead=self.settings.batch_overhead,
                on_batch=self.metrics.batch_size.observe,
                on_queue_depth=self.metrics.queue_depth.set,
                detect=self.detect_language,
            )
            batcher.start()
            self.batcher = batcher
            self.scoring = ScoringService(
                batcher,
                self.sessions,
                self.writer,
                self.metrics,
                model_name=predictor.name,
                model_version=predictor.version,
            )
            self.ready = True
            self.metrics.model_ready.set(1)
            log.info("model %s %s ready", predictor.name, predictor.version)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("the model failed to load")

    async def start(self) -> None:
        await run_in_threadpool(self.prepare_database)
        self.writer.start()
        self._load_task = asyncio.ensure_future(asyncio.to_thread(self.load_model))

    async def stop(self) -> None:
        if self._load_task is not None:
            await self._load_task  # a thread cannot be cancelled: let the load finish
        if self.batcher is not None:
            await run_in_threadpool(self.batcher.stop)
        await run_in_threadpool(self.writer.stop)
        self.ready = False
        self.metrics.model_ready.set(0)
        self.engine.dispose()

    # --- for routes ---

    def require_scoring(self) -> ScoringService:
        if self.scoring is None or not self.ready:
            detail = (
                f"the model failed to load: {self.load_error}"
                if self.load_error
                else "the model is still loading: retry when /readyz answers 200"
            )
            raise HTTPException(503, detail, headers={"Retry-After": "1"})
        return self.scoring

    @property
    def model_name(self) -> str:
        if self.predictor is not None:
            return self.predictor.name
        assert self.bundle is not None
        return self.bundle.meta.name

    @property
    def model_version(self) -> str:
        if self.predictor is not None:
            return self.predictor.version
        assert self.bundle is not None
        return self.bundle.meta.version
