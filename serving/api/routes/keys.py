"""API key management for admins: create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from serving.api.auth import AdminKey, KeyStoreDep
from serving.api.deps import DbSession, DbTransaction
from serving.api.schemas import MAX_KEY_ID, KeyCreate, KeyCreated, KeyList, KeyOut
from serving.storage.keys import create_key, list_keys, revoke_key
from serving.timefmt import from_db

router = APIRouter(tags=["access"])


@router.post(
    "/v1/keys",
    response_model=KeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses={401: {}, 403: {}, 422: {}},
)
def create(body: KeyCreate, _: AdminKey, db: DbTransaction) -> KeyCreated:
    created = create_key(db, name=body.name, scopes=body.scopes)
    return KeyCreated(id=created.id, name=created.name, key=created.token, scopes=created.scopes)


@router.get("/v1/keys", response_model=KeyList, responses={401: {}, 403: {}})
def index(_: AdminKey, db: DbSession) -> KeyList:
    data = [
        KeyOut(
            id=k.id,
            name=k.name,
            prefix=k.prefix,
            scopes=k.scopes.split(","),
            created_at=from_db(k.created_at),
            revoked_at=from_db(k.revoked_at) if k.revoked_at else None,
        )
        for k in list_keys(db)
    ]
    return KeyList(data=data, count=len(data))


@router.delete("/v1/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses={401: {}, 403: {}, 404: {}})
def revoke(key_id: Annotated[int, Path(ge=1, le=MAX_KEY_ID)], _: AdminKey, db: DbSession, keys: KeyStoreDep) -> None:
    with db.begin():  # committed before the cache forgets the key, so no request re-reads it as active
        revoked = revoke_key(db, key_id)
    if not revoked:
        raise HTTPException(404, f"no active API key with id {key_id}")
    keys.forget(key_id)
