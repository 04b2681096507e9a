"""API keys for the Perspective-compatible routes: `?key=KEY` as Perspective clients send it, the
`x-goog-api-key` header Google's libraries can send, or `Authorization: Bearer KEY`.

The keys are belonging's own (`belong keys create --scopes score`), resolved through the app's
KeyStore like every other route; failures come back in Google's error envelope.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving.api.auth import LOCAL_PRINCIPAL, KeyStoreDep, Principal, RateLimiterDep
from serving.api.deps import RuntimeDep
from serving.perspective.errors import PerspectiveError

SCOPE = "score"
# With a realm: httplib2 (under Google's Python client) fails on a bare "Bearer" challenge.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="belonging"'}


def presented_key(request: Request) -> str | None:
    token = request.query_params.get("key") or request.headers.get("x-goog-api-key")
    if token:
        return token.strip()
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def perspective_key(
    request: Request, runtime: RuntimeDep, keys: KeyStoreDep, limiter: RateLimiterDep
) -> Principal:
    """The key's principal, counted against its request budget like any keyed route (429 otherwise)."""
    if runtime.settings.auth_disabled:
        await limiter.hit_request(request.scope.setdefault("state", {}), LOCAL_PRINCIPAL)
        return LOCAL_PRINCIPAL
    token = presented_key(request)
    if token is None:
        raise PerspectiveError(
            401,
            "The request is missing a valid API key: pass ?key=KEY or 'Authorization: Bearer KEY'.",
            info_reason="API_KEY_MISSING",
            headers=CHALLENGE,
        )
    principal = await keys.resolve(token)
    if principal is None:
        raise PerspectiveError(
            401,
            "API key not valid. Please pass a valid API key.",
            info_reason="API_KEY_INVALID",
            headers=CHALLENGE,
        )
    await limiter.hit_request(request.scope.setdefault("state", {}), principal)
    if not principal.allows(SCOPE):
        raise PerspectiveError(403, f"This API key lacks the '{SCOPE}' scope.", info_reason="API_KEY_SCOPE_MISSING")
    return principal


PerspectiveKey = Annotated[Principal, Depends(perspective_key)]
