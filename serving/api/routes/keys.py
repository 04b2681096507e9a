"""API key management for admins: create (the key is shown once), list, set rate limits, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from serving.api.auth import AdminKey, KeyStoreDep
from serving.api.deps import DbSession, DbTransaction
from serving.api.schemas import MAX_KEY_ID, KeyCreate, KeyCreated, KeyList, KeyOut, RateLimits
from serving.storage.keys import create_key, list_keys, revoke_key
from serving.storage.ratelimits import KeyLimits, all_key_limits, set_key_limits
from serving.timefmt import from_db

router = APIRouter(tags=["access"])
KeyId = Annotated[int, Path(ge=1, le=MAX_KEY_ID)]


def _limits(limits: RateLimits | None) -> KeyLimits:
    return KeyLimits(limits.requests_per_second, limits.comments_per_second) if limits else KeyLimits()


def _out(limits: KeyLimits) -> RateLimits:
    return RateLimits(requests_per_second=limits.requests_per_second, comments_per_second=limits.comments_per_second)


@router.post(
    "/v1/keys",
    response_model=KeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses={401: {}, 403: {}, 422: {}},
)
def create(body: KeyCreate, _: AdminKey, db: DbTransaction) -> KeyCreated:
    created = create_key(db, name=body.name, scopes=body.scopes)
    limits = _limits(body.rate_limits)
    set_key_limits(db, created.id, limits)
    return KeyCreated(
        id=created.id, name=created.name, key=created.token, scopes=created.scopes, rate_limits=_out(limits)
    )


@router.get("/v1/keys", response_model=KeyList, responses={401: {}, 403: {}})
def index(_: AdminKey, db: DbSession) -> KeyList:
    limits = all_key_limits(db)
    data = [
        KeyOut(
            id=k.id,
            name=k.name,
            prefix=k.prefix,
            scopes=k.scopes.split(","),
            created_at=from_db(k.created_at),
            revoked_at=from_db(k.revoked_at) if k.revoked_at else None,
            rate_limits=_out(limits.get(k.id, KeyLimits())),
        )
        for k in list_keys(db)
    ]
    return KeyList(data=data, count=len(data))


@router.put("/v1/keys/{key_id}/rate-limits", response_model=RateLimits, responses={401: {}, 403: {}, 404: {}})
def set_rate_limits(key_id: KeyId, body: RateLimits, _: AdminKey, db: DbSession, keys: KeyStoreDep) -> RateLimits:
    """Set a key's own rate limits (null fields: the server default). Takes effect at once here."""
    with db.begin():
        found = set_key_limits(db, key_id, _limits(body))
    if not found:
        raise HTTPException(404, f"no API key with id {key_id}")
    keys.forget(key_id)
    return body


@router.delete("/v1/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses={401: {}, 403: {}, 404: {}})
def revoke(key_id: KeyId, _: AdminKey, db: DbSession, keys: KeyStoreDep) -> None:
    with db.begin():  # committed before the cache forgets the key, so no request re-reads it as active
        revoked = revoke_key(db, key_id)
    if not revoked:
        raise HTTPException(404, f"no active API key with id {key_id}")
    keys.forget(key_id)
