"""The FastAPI application.

Usage:
    app = create_app(Settings(bundle="models/default"))           # what `belong serve` runs
    app = create_app(settings, predictor=FakePredictor())          # tests swap the model

On start-up the app migrates a SQLite database to the newest Alembic revision (PostgreSQL is
checked, and migrated only with BELONG_AUTO_MIGRATE=true; run `belong db upgrade` otherwise), then
loads the model in the background: /readyz answers 503 until it is loaded and warmed up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import to_thread
from fastapi import FastAPI

from serving.api.auth import KeyStore
from serving.api.errors import BodyLimitMiddleware, CatchAllMiddleware, install_errors, model_unavailable
from serving.api.metrics import Metrics, MetricsMiddleware
from serving.api.ratelimit import RateLimiter, RateLimitHeadersMiddleware
from serving.api.routes import ROUTERS
from serving.api.scoring import ScoringService
from serving.engine.batching import PredictorLike
from serving.engine.bundle import Bundle, BundleError, load_bundle
from serving.integrations.routes import router as integrations_router
from serving.labels import TAGS
from serving.moderation import install_moderation
from serving.perspective.routes import router as perspective_router
from serving.runtime import ModelUnavailable, Runtime
from serving.settings import Settings
from serving.webhooks.delivery import webhook_worker

log = logging.getLogger(__name__)

DESCRIPTION = """Tags comments **welcoming**, **curious** and **hostile** (multi-label) and reports how a
community receives newcomers. Send `Authorization: Bearer <key>` (create keys with
`belong keys create --scopes score,read`). See docs/api.md for the belonging index and examples."""


def check_labels(labels: list[str], source: str) -> None:
    if sorted(labels) != sorted(TAGS):
        raise BundleError(f"{source} has labels {labels}; this server needs exactly {list(TAGS)}")


def create_app(settings: Settings | None = None, *, predictor: PredictorLike | None = None) -> FastAPI:
    """Build the app. Raises BundleError at once when the bundle folder is invalid."""
    settings = settings or Settings()
    bundle: Bundle | None = None
    if predictor is None:
        bundle = load_bundle(settings.bundle)
        check_labels(bundle.labels, f"bundle {str(settings.bundle)!r}")
    else:
        check_labels(list(predictor.labels), "the predictor")
    metrics = Metrics()
    runtime = Runtime(
        settings,
        bundle=bundle,
        predictor=predictor,
        on_batch=metrics.batch_size.observe,
        on_queue_depth=metrics.queue_depth.set,
        on_ready=lambda ready: metrics.model_ready.set(1 if ready else 0),
    )

    webhooks = webhook_worker(runtime.sessions, settings.flag_limits)  # outbox delivery (serving/webhooks)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        webhooks.start()
        try:
            yield
        finally:
            await to_thread.run_sync(webhooks.stop)
            await runtime.stop()

    # Prometheus (/metrics) is the telemetry here; FastAPI's OpenTelemetry hooks cost time per request.
    app = FastAPI(
        title="belonging",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.runtime = runtime
    app.state.webhooks = webhooks
    app.state.metrics = metrics
    app.state.key_store = KeyStore(runtime.sessions, settings.key_cache_seconds)
    app.state.scoring = ScoringService(runtime, metrics)
    app.state.rate_limiter = RateLimiter.from_settings(settings)
    install_errors(app)  # one error shape everywhere, described in /openapi.json
    app.add_exception_handler(ModelUnavailable, model_unavailable)
    # Last added runs first: metrics see every response, including the 500s and 413s below them.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes, exempt={"/v1/stream"})
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(perspective_router)  # Perspective-compatible routes (serving/perspective)
    app.include_router(integrations_router)  # Coral's external moderation phase (serving/integrations)
    install_moderation(app)  # moderator pages, their static files and security headers (serving/moderation)
    return app
