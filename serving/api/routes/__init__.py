"""One router module per group of routes; `ROUTERS` lists them in the order /docs shows them."""

from __future__ import annotations

from serving.api.routes import communities, flags, health, info, keys, score, stream, threads

ROUTERS = [
    score.router,
    stream.router,
    threads.router,
    communities.router,
    flags.router,
    info.router,
    keys.router,
    health.router,
]
