"""Per-key rate limits on requests and on comments, with the `limits` library.

Usage:
    limiter = RateLimiter.from_settings(settings)               # one per app: app.state.rate_limiter
    await limiter.hit_request(request, principal)               # every keyed request (auth does it)
    await limiter.hit_comments(principal, len(comments))        # /v1/score, before scoring
    await limiter.pace_comments(principal, 1)                   # /v1/stream: waits instead of refusing

Each key has two budgets: requests per second (a 1 s sliding window) and comments per second
(a 10 s sliding window, so a request of 256 comments fits a key allowed 26 per second). A key's
own limits (table `key_limits`, set with `PUT /v1/keys/{id}/limits`) override the defaults
`BELONG_RATE_LIMIT_REQUESTS` and `BELONG_RATE_LIMIT_COMMENTS`. Exceeding one answers 429 with
`Retry-After`; every keyed answer carries `RateLimit-Limit`, `RateLimit-Remaining` and
`RateLimit-Reset` (seconds) for the request budget, and `RateLimit-Policy`.

The counters live in `BELONG_RATE_LIMIT_STORAGE`: `memory://` (this process only) by default, or
`redis://host:6379` (redis-py is a dependency) so that several server
processes share them.
If that storage fails, requests are let through (logged): a limiter outage must not stop scoring.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.api.errors import ApiError

if TYPE_CHECKING:
    from serving.api.auth import Principal
    from serving.settings import Settings

log = logging.getLogger(__name__)
REQUEST_WINDOW = 1  # seconds
COMMENT_WINDOW = 10  # seconds
STATE_KEY = "rate_limit_headers"


@dataclass(frozen=True)
class Rates:
    requests_per_second: int
    comments_per_second: int


def async_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else f"async+{uri}"


class RateLimiter:
    def __init__(self, storage_uri: str, defaults: Rates, enabled: bool = True) -> None:
        self.storage_uri = storage_uri
        self.defaults = defaults
        self.enabled = enabled
        options: dict[str, str] = {}
        if storage_uri.split("://", 1)[0] in ("redis", "rediss", "redis+unix"):
            options = {"implementation": "redispy", "key_prefix": "belong"}  # redis-py, not coredis
        self.storage = storage_from_string(async_uri(storage_uri), **options)
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)  # type: ignore[arg-type]

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls(
            settings.rate_limit_storage,
            Rates(settings.rate_limit_requests, settings.rate_limit_comments),
            enabled=settings.rate_limit_enabled,
        )

    def rates_of(self, principal: Principal) -> Rates:
        return Rates(
            principal.requests_per_second or self.defaults.requests_per_second,
            principal.comments_per_second or self.defaults.comments_per_second,
        )

    @staticmethod
    def identity(principal: Principal) -> str:
        return f"key-{principal.key_id}" if principal.key_id is not None else "no-auth"

    async def _hit(self, item: RateLimitItem, identity: str, cost: int) -> tuple[bool, int, float]:
        """(allowed, remaining, seconds until the window frees up)."""
        try:
            allowed = await self.strategy.hit(item, "belong", identity, cost=cost)
            stats = await self.strategy.get_window_stats(item, "belong", identity)
        except Exception:  # the storage is down: let the request through rather than stop scoring
            log.warning("rate limit storage %s failed; not limiting", self.storage_uri, exc_info=True)
            return True, item.amount, 0.0
        return allowed, stats.remaining, max(0.0, stats.reset_time - time.time())

    async def hit_request(self, state: dict, principal: Principal) -> None:
        """Count one request; raise 429 when the key's request budget is spent. Headers go to `state`."""
        if not self.enabled:
            return
        rates = self.rates_of(principal)
        item = RateLimitItemPerSecond(rates.requests_per_second, REQUEST_WINDOW)
        allowed, remaining, reset = await self._hit(item, self.identity(principal), 1)
        headers = {
            "RateLimit-Limit": str(rates.requests_per_second),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(math.ceil(reset)),
            "RateLimit-Policy": (
                f"{rates.requests_per_second};w={REQUEST_WINDOW}, "
                f"{rates.comments_per_second * COMMENT_WINDOW};w={COMMENT_WINDOW};comment"
            ),
        }
        state[STATE_KEY] = headers
        if not allowed:
            retry = max(1, math.ceil(reset))
            raise ApiError(
                429,
                f"rate limit: this key may send {rates.requests_per_second} requests per second; retry in {retry} s",
                kind="rate_limited",
                headers={**headers, "Retry-After": str(retry)},
            )

    def _comment_item(self, principal: Principal, comments: int) -> tuple[RateLimitItem, Rates]:
        rates = self.rates_of(principal)
        budget = rates.comments_per_second * COMMENT_WINDOW
        if comments > budget:
            raise ApiError(
                413,
                f"comments: this key may send at most {budget} comments per {COMMENT_WINDOW} s, "
                f"got {comments} in one request",
                kind="too_large",
                loc=("body", "comments"),
            )
        return RateLimitItemPerSecond(budget, COMMENT_WINDOW), rates

    async def hit_comments(self, principal: Principal, comments: int) -> None:
        """Count comments; raise 429 when the key's comment budget cannot take them now."""
        if not self.enabled or comments <= 0:
            return
        item, rates = self._comment_item(principal, comments)
        allowed, _remaining, reset = await self._hit(item, self.identity(principal), comments)
        if not allowed:
            retry = max(1, math.ceil(reset))
            raise ApiError(
                429,
                f"rate limit: this key may send {rates.comments_per_second} comments per second "
                f"(averaged over {COMMENT_WINDOW} s); retry in {retry} s",
                kind="rate_limited",
                headers={"Retry-After": str(retry)},
            )

    async def pace_comments(self, principal: Principal, comments: int, sleep: float = 0.05) -> None:
        """Wait until the key's comment budget takes `comments` (a stream slows down instead of failing)."""
        import asyncio

        while True:
            try:
                await self.hit_comments(principal, comments)
                return
            except ApiError as exc:
                if exc.status_code != 429:
                    raise
                await asyncio.sleep(sleep)


class RateLimitHeadersMiddleware:
    """Copy the RateLimit-* headers a request's rate check left in its state onto its answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra: Mapping[str, str] | None = scope.get("state", {}).get(STATE_KEY)
                if extra:
                    present = {name.lower() for name, _ in message.get("headers", [])}
                    added = [
                        (k.lower().encode(), v.encode()) for k, v in extra.items() if k.lower().encode() not in present
                    ]
                    message = {**message, "headers": [*message.get("headers", []), *added]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
