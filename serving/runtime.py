"""What one running server holds (settings, store, model, batcher, writer) and its start-up and
shut-down. Shared by the JSON API and the moderator pages; no web framework here.

Usage (the app's lifespan does this):
    runtime = Runtime(settings, bundle=load_bundle(settings.bundle))
    await runtime.start(); ...; runtime.require_ready(); ...; await runtime.stop()

Start-up: migrate or check the database, then load the model in a background thread so /healthz
answers at once and /readyz answers 503 until the model is loaded and one warm-up batch has run.
A model that fails to load turns /healthz to 503 as well.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable

from anyio import to_thread

from serving.engine.batching import MicroBatcher, PredictorLike
from serving.engine.bundle import Bundle, BundleMeta
from serving.engine.lang import language_detector, parse_languages
from serving.engine.tagger import Tagger
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


STUCK_WRITE_SECONDS = 1.0  # a write waiting longer than this makes /readyz answer 503


def _ignore(_value: float) -> None:
    return None


class ModelUnavailable(RuntimeError):
    """The model is still loading, or failed to load; the message says which."""


class Runtime:
    def __init__(
        self,
        settings: Settings,
        *,
        bundle: Bundle | None = None,
        predictor: PredictorLike | None = None,
        on_batch: Callable[[int], None] = _ignore,
        on_queue_depth: Callable[[int], None] = _ignore,
        on_ready: Callable[[bool], None] = _ignore,
    ) -> None:
        if bundle is None and predictor is None:
            raise ValueError("give a bundle or a predictor")
        self.settings = settings
        self.bundle = bundle
        self.predictor = predictor
        self._on_batch = on_batch
        self._on_queue_depth = on_queue_depth
        self._on_ready = on_ready
        # Built here, not in the background, so unknown language codes stop the start-up.
        self.detect_language = language_detector(parse_languages(settings.languages), settings.lang_min_confidence)
        self.engine = make_engine(settings.database_url, busy_timeout_ms=settings.store_busy_timeout_ms)
        self.sessions = make_sessionmaker(self.engine)
        self.writer = GroupWriter(
            self.sessions,
            model_name=self.model_name,
            model_version=self.model_version,
            probe_interval=settings.store_probe_ms / 1000,
        )
        self.batcher: MicroBatcher | None = None
        self.tagger: Tagger | None = None
        self.ready = False
        self.load_error: str | None = None
        self.warmup_seconds_per_comment: float | None = None
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
            built_here = False  # a real model, not one a test handed in
            if self.predictor is None:
                built_here = True
                from serving.engine.predictor import Predictor

                assert self.bundle is not None
                log.info(
                    "loading %r: %d model call(s) at once on %d onnxruntime thread(s) each",
                    self.bundle,
                    self.settings.model_threads,
                    self.settings.intra_op_threads,
                )
                self.predictor = Predictor(self.bundle, threads=self.settings.intra_op_threads)
            # The Python API's tagger: its predictor and detector are what the batcher runs.
            self.tagger = Tagger(
                self.predictor,
                self.detect_language,
                batch_size=self.settings.max_batch_size,
                batch_overhead=self.settings.batch_overhead,
            )
            predictor = self.tagger.predictor
            start = time.perf_counter()
            self.tagger.score(WARMUP_TEXTS)
            # A first guess of the model's speed for the overload guard, until real calls refine it.
            self.warmup_seconds_per_comment = (time.perf_counter() - start) / len(WARMUP_TEXTS)
            if built_here:
                # Everything loaded so far lives as long as the server: out of the collector's sight, a
                # full collection under load stops stalling every thread (measured 120 -> 0 ms).
                gc.collect()
                gc.freeze()
            batcher = MicroBatcher(
                predictor,
                max_batch_size=self.settings.max_batch_size,
                max_wait_ms=self.settings.max_wait_ms,
                max_queue=self.settings.max_queue,
                pool_batches=self.settings.pool_batches,
                batch_overhead=self.settings.batch_overhead,
                model_threads=self.settings.model_threads,
                on_batch=self._on_batch,
                on_queue_depth=self._on_queue_depth,
                detect=self.tagger.detect,
            )
            batcher.start()
            self.batcher = batcher
            self.ready = True
            self._on_ready(True)
            log.info("model %s %s ready", predictor.name, predictor.version)
        except Exception as exc:
            self.load_error = f"{type(exc).__name__}: {exc}"
            log.exception("the model failed to load")

    async def start(self) -> None:
        await to_thread.run_sync(self.prepare_database)
        self.writer.start()
        self._load_task = asyncio.ensure_future(asyncio.to_thread(self.load_model))

    async def stop(self) -> None:
        if self._load_task is not None:
            await self._load_task  # a thread cannot be cancelled: let the load finish
        if self.batcher is not None:
            await to_thread.run_sync(self.batcher.stop)
        await to_thread.run_sync(self.writer.stop)
        self.ready = False
        self._on_ready(False)
        self.engine.dispose()

    # --- for the API and the pages ---

    def require_ready(self) -> None:
        """Raise ModelUnavailable while the model loads, or after it failed to (the API answers 503)."""
        if self.batcher is None or not self.ready:
            raise ModelUnavailable(
                f"the model failed to load: {self.load_error}"
                if self.load_error
                else "the model is still loading: retry when /readyz answers 200"
            )

    @property
    def store_fault(self) -> str | None:
        """Why the store cannot take writes, while that lasts (the writer probes it and recovers):
        writes fail, or one has been waiting for the database longer than STUCK_WRITE_SECONDS."""
        now = time.monotonic()
        fault, since, busy = self.writer.fault, self.writer.fault_since, self.writer.busy_since
        if fault is not None:
            return f"{fault} (for {now - since:.1f} s)" if since is not None else fault
        if busy is not None and now - busy > STUCK_WRITE_SECONDS:
            return f"a write has been waiting for the database for {now - busy:.1f} s"
        return None

    @property
    def meta(self) -> BundleMeta:
        """The served bundle's metadata (a test's fake predictor carries a stand-in)."""
        if self.bundle is not None:
            return self.bundle.meta
        assert self.predictor is not None
        meta: BundleMeta = self.predictor.bundle.meta
        return meta

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
