"""Per-key rate limits: a key without a row here gets the server's defaults.

Usage (inside a session):
    set_key_limits(session, key_id, requests_per_second=20, comments_per_second=None)  # None: default
    limits = key_limits(session, key_id)     # KeyLimits(requests_per_second=20, comments_per_second=None)
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import CheckConstraint, ForeignKey, Integer, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from serving.storage.models import ApiKey, Base


class KeyLimit(Base):
    __tablename__ = "key_limits"

    key_id: Mapped[int] = mapped_column(Integer, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    requests_per_second: Mapped[int | None] = mapped_column(Integer, nullable=True)
    comments_per_second: Mapped[int | None] = mapped_column(Integer, nullable=True)

    __table_args__ = (
        CheckConstraint("requests_per_second IS NULL OR requests_per_second > 0", name="ck_key_limits_requests"),
        CheckConstraint("comments_per_second IS NULL OR comments_per_second > 0", name="ck_key_limits_comments"),
    )


@dataclass(frozen=True)
class KeyLimits:
    """A key's own limits; None means the server default."""

    requests_per_second: int | None = None
    comments_per_second: int | None = None


def key_limits(session: Session, key_id: int) -> KeyLimits:
    row = session.get(KeyLimit, key_id)
    if row is None:
        return KeyLimits()
    return KeyLimits(row.requests_per_second, row.comments_per_second)


def all_key_limits(session: Session) -> dict[int, KeyLimits]:
    rows = session.scalars(select(KeyLimit))
    return {r.key_id: KeyLimits(r.requests_per_second, r.comments_per_second) for r in rows}


def set_key_limits(session: Session, key_id: int, limits: KeyLimits) -> bool:
    """Set (or, with both None, clear) a key's limits; False when there is no such key."""
    if session.get(ApiKey, key_id) is None:
        return False
    row = session.get(KeyLimit, key_id)
    if limits.requests_per_second is None and limits.comments_per_second is None:
        if row is not None:
            session.delete(row)
        return True
    if row is None:
        row = KeyLimit(key_id=key_id)
        session.add(row)
    row.requests_per_second = limits.requests_per_second
    row.comments_per_second = limits.comments_per_second
    return True
