"""API key management for admins: create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.concurrency import run_in_threadpool

from serving.api.deps import AdminKey, RuntimeDep
from serving.api.schemas import KeyCreate, KeyCreated, KeyList, KeyOut
from serving.storage.keys import create_key, list_keys, revoke_key
from serving.timefmt import from_db

router = APIRouter(tags=["access"])


@router.post(
    "/v1/keys",
    response_model=KeyCreated,
    status_code=status.HTTP_201_CREATED,
    responses={401: {}, 403: {}, 422: {}},
)
async def create(body: KeyCreate, runtime: RuntimeDep, _: AdminKey) -> KeyCreated:
    def run() -> KeyCreated:
        with runtime.sessions.begin() as session:
            created = create_key(session, name=body.name, scopes=body.scopes)
        return KeyCreated(id=created.id, name=created.name, key=created.token, scopes=created.scopes)

    return await run_in_threadpool(run)


@router.get("/v1/keys", response_model=KeyList, responses={401: {}, 403: {}})
async def index(runtime: RuntimeDep, _: AdminKey) -> KeyList:
    def run() -> list[KeyOut]:
        with runtime.sessions() as session:
            return [
                KeyOut(
                    id=k.id,
                    name=k.name,
                    prefix=k.prefix,
                    scopes=k.scopes.split(","),
                    created_at=from_db(k.created_at),
                    revoked_at=from_db(k.revoked_at) if k.revoked_at else None,
                )
                for k in list_keys(session)
            ]

    data = await run_in_threadpool(run)
    return KeyList(data=data, count=len(data))


@router.delete("/v1/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses={401: {}, 403: {}, 404: {}})
async def revoke(key_id: Annotated[int, Path(ge=1)], runtime: RuntimeDep, _: AdminKey) -> None:
    def run() -> bool:
        with runtime.sessions.begin() as session:
            return revoke_key(session, key_id)

    if not await run_in_threadpool(run):
        raise HTTPException(404, f"no active API key with id {key_id}")
    runtime.keys.forget(key_id)
