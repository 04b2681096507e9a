"""API-key access: `Authorization: Bearer <key>`, scopes checked per route.

Usage in a route: `def handler(_: ReadKey)`, or `principal: Principal = Depends(require("score"))`.

401 when the key is missing or unknown, 403 when it lacks the route's scope, 429 when it exceeds its
request rate (serving.api.ratelimit; every keyed answer carries RateLimit-* headers). `admin` implies
the other scopes. Lookups are cached for `key_cache_seconds` (revoking through the API clears the cache
at once; revoking from the CLI takes effect within that time).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from anyio import to_thread
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from serving.api.deps import RuntimeDep
from serving.api.ratelimit import RateLimiter
from serving.labels import ADMIN, SCOPES
from serving.storage.keys import find_active_key, hash_token
from serving.storage.ratelimits import key_limits

bearer_scheme = HTTPBearer(auto_error=False, description="An API key from `belong keys create`.")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    key_id: int | None
    name: str
    scopes: frozenset[str]
    requests_per_second: int | None = None  # the key's own rate limits; None: the server's default
    comments_per_second: int | None = None

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN in self.scopes


LOCAL_PRINCIPAL = Principal(key_id=None, name="auth disabled", scopes=frozenset(SCOPES))


class KeyStore:
    """Resolve tokens to principals through the database, with a short in-process cache."""

    def __init__(self, sessions: sessionmaker[Session], cache_seconds: float) -> None:
        self.sessions = sessions
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[Principal | None, float]] = {}

    def _lookup(self, key_hash: str) -> Principal | None:
        with self.sessions() as session:
            row = find_active_key(session, key_hash)
            if row is None:
                return None
            limits = key_limits(session, row.id)
            return Principal(
                key_id=row.id,
                name=row.name,
                scopes=frozenset(row.scopes.split(",")),
                requests_per_second=limits.requests_per_second,
                comments_per_second=limits.comments_per_second,
            )

    async def resolve(self, token: str) -> Principal | None:
        key_hash = hash_token(token)
        now = time.monotonic()
        cached = self._cache.get(key_hash)
        if cached is not None and cached[1] > now:
            return cached[0]
        principal = await to_thread.run_sync(self._lookup, key_hash)
        if self.cache_seconds > 0:
            if len(self._cache) > 10_000:  # unknown tokens must not grow this without bound
                self._cache.clear()
            self._cache[key_hash] = (principal, now + self.cache_seconds)
        return principal

    def forget(self, key_id: int) -> None:
        self._cache = {h: v for h, v in self._cache.items() if v[0] is None or v[0].key_id != key_id}


async def get_key_store(request: Request) -> KeyStore:
    keys: KeyStore = request.app.state.key_store
    return keys


KeyStoreDep = Annotated[KeyStore, Depends(get_key_store)]


async def get_rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits requests whose key carries `scope` (or admin)."""

    async def dependency(
        request: Request,
        runtime: RuntimeDep,
        keys: KeyStoreDep,
        limiter: RateLimiterDep,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ) -> Principal:
        if runtime.settings.auth_disabled:
            await limiter.hit_request(request.scope.setdefault("state", {}), LOCAL_PRINCIPAL)
            return LOCAL_PRINCIPAL
        header = request.headers.get("authorization")
        if not header:
            raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>'", headers=CHALLENGE)
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(401, "malformed Authorization header: expected 'Bearer <key>'", headers=CHALLENGE)
        principal = await keys.resolve(token)
        if principal is None:
            raise HTTPException(401, "invalid or revoked API key", headers=CHALLENGE)
        await limiter.hit_request(request.scope.setdefault("state", {}), principal)
        if not principal.allows(scope):
            raise HTTPException(403, f"this API key lacks the '{scope}' scope")
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


ScoreKey = Annotated[Principal, Depends(require("score"))]
ReadKey = Annotated[Principal, Depends(require("read"))]
AdminKey = Annotated[Principal, Depends(require("admin"))]
