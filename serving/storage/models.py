"""ORM tables. The Alembic migrations in `serving/storage/migrations/` are the source of the schema;
these classes mirror them (a test checks that they agree).

Times are naive UTC. A comment without a community is stored with community_id "" so that the
uniqueness of (community_id, comment_id) holds for it too (NULLs never collide in a unique index).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from serving.labels import THREAD_STATUSES

ID_LENGTH = 200


def one_of(column: str, values: tuple[str, ...]) -> str:
    """The SQL of a CHECK that `column` holds one of `values`: "status IN ('open', 'resolved')"."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    """An API key: only its sha256 is kept; `prefix` lets people tell keys apart in listings."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(100))  # comma-separated, sorted
    created_at: Mapped[datetime] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),)


class Comment(Base):
    """One scored comment, unique per (community_id, comment_id)."""

    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    comment_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    thread_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    author_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    parent_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    lang: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime)  # the comment's own time (or receipt)
    received_at: Mapped[datetime] = mapped_column(DateTime)
    p_welcoming: Mapped[float] = mapped_column(Float)
    p_curious: Mapped[float] = mapped_column(Float)
    p_hostile: Mapped[float] = mapped_column(Float)
    welcoming: Mapped[bool] = mapped_column(Boolean)
    curious: Mapped[bool] = mapped_column(Boolean)
    hostile: Mapped[bool] = mapped_column(Boolean)
    truncated: Mapped[bool] = mapped_column(Boolean)
    model_name: Mapped[str] = mapped_column(String(100))
    model_version: Mapped[str] = mapped_column(String(100))

    __table_args__ = (
        UniqueConstraint("community_id", "comment_id", name="uq_comments_community_comment"),
        Index("ix_comments_community_created", "community_id", "created_at"),
        Index("ix_comments_community_thread_created", "community_id", "thread_id", "created_at"),
        Index("ix_comments_thread_created", "thread_id", "created_at"),
        Index("ix_comments_community_parent", "community_id", "parent_id"),
        Index("ix_comments_community_author_created", "community_id", "author_id", "created_at"),
    )


class Thread(Base):
    """Per-thread counters kept up to date on insert, plus a review status for moderators."""

    __tablename__ = "threads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    thread_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    status: Mapped[str] = mapped_column(String(16), server_default="open")
    comment_count: Mapped[int] = mapped_column(Integer, server_default="0")
    welcoming_count: Mapped[int] = mapped_column(Integer, server_default="0")
    curious_count: Mapped[int] = mapped_column(Integer, server_default="0")
    hostile_count: Mapped[int] = mapped_column(Integer, server_default="0")
    first_at: Mapped[datetime] = mapped_column(DateTime)
    last_at: Mapped[datetime] = mapped_column(DateTime)
    last_hostile_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("community_id", "thread_id", name="uq_threads_community_thread"),
        CheckConstraint(one_of("status", THREAD_STATUSES), name="ck_threads_status"),
        Index("ix_threads_status_last_hostile", "status", "last_hostile_at"),
        Index("ix_threads_community_status", "community_id", "status"),
    )
