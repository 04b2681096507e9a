"""API keys: random tokens of which only the sha256 is stored.

Usage (inside a session):
    created = create_key(session, name="local", scopes={"score", "read"})   # created.token shown once
    key = find_active_key(session, hash_token(token))
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from serving.labels import SCOPES
from serving.storage.models import ApiKey
from serving.timefmt import utcnow

TOKEN_PREFIX = "blg_"


def hash_token(token: str) -> str:
    """What is stored of an API key or a login session's cookie token: its sha256. Enough here, as
    both tokens carry 256 random bits, so there is nothing to brute-force."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_scopes(scopes: Iterable[str]) -> list[str]:
    """Validated, de-duplicated, ordered scopes; ValueError names unknown ones."""
    wanted = {s.strip() for s in scopes if s.strip()}
    unknown = sorted(wanted - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {unknown}: choose from {list(SCOPES)}")
    if not wanted:
        raise ValueError(f"give at least one scope from {list(SCOPES)}")
    return [s for s in SCOPES if s in wanted]


@dataclass(frozen=True)
class CreatedKey:
    id: int
    name: str
    token: str  # the only time the plain key exists
    scopes: list[str]


def create_key(session: Session, *, name: str, scopes: Iterable[str]) -> CreatedKey:
    chosen = parse_scopes(scopes)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        prefix=token[:10],
        key_hash=hash_token(token),
        scopes=",".join(chosen),
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return CreatedKey(id=row.id, name=name, token=token, scopes=chosen)


def find_active_key(session: Session, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)))


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(session: Session, key_id: int) -> bool:
    """Revoke a key; False when there is no such active key."""
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    return True
