"""Prometheus metrics, one registry per app (so tests can build many apps), and the ASGI middleware
that times every request by its route template.

Usage: `metrics = Metrics()`; `app.add_middleware(MetricsMiddleware, metrics=metrics)`;
`GET /metrics` renders `metrics.render()`.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.labels import TAGS

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128, 256)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_latency = Histogram(
            "belong_request_duration_seconds",
            "Time from request start to the last response byte, by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.responses = Counter(
            "belong_responses",
            "HTTP responses by route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "belong_batch_size", "Comments per model batch.", buckets=BATCH_BUCKETS, registry=self.registry
        )
        self.queue_depth = Gauge("belong_queue_depth", "Comments waiting for the batcher.", registry=self.registry)
        self.comments_scored = Counter(
            "belong_comments_scored",
            "Comments scored by the model (stored duplicates are not re-scored).",
            registry=self.registry,
        )
        self.tags = Counter("belong_comment_tags", "Tags given to scored comments.", ["tag"], registry=self.registry)
        for tag in TAGS:
            self.tags.labels(tag=tag)  # export zeros from the start
        self.model_ready = Gauge(
            "belong_model_ready", "1 once the model is loaded and warmed up.", registry=self.registry
        )

    def count_scored(self, tag_lists: list[list[str]]) -> None:
        if not tag_lists:
            return
        self.comments_scored.inc(len(tag_lists))
        for tag in TAGS:
            n = sum(tag in tags for tags in tag_lists)
            if n:
                self.tags.labels(tag=tag).inc(n)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead); streamed responses are timed to their end."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.request_latency.labels(method=method, route=template).observe(time.perf_counter() - start)
            self.metrics.responses.labels(method=method, route=template, status=str(status)).inc()
