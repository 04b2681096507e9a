"""ORM tables for the moderator pages: accounts, login sessions, login attempts, reviewed labels and
the audit log. Migration `0002_moderation` creates them; a test checks that the two agree.

Usage (inside a session):
    session.add(AuditEntry(at=utcnow(), actor="alice", action="tag.reject", ...))

The audit log is insert-only: there is no update or delete path in the code, the ORM refuses to
flush a changed or deleted entry (`AuditLogIsAppendOnly`), and the migration adds database
triggers that refuse UPDATE and DELETE on `audit_log` (SQLite and PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from serving.labels import ROLES, TAGS
from serving.storage.models import ID_LENGTH, Base, one_of

USERNAME_LENGTH = 64


class Moderator(Base):
    """A person who may open the moderator pages. Never deleted (the audit log refers to them):
    disabling one ends their sessions and refuses their logins."""

    __tablename__ = "moderators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_LENGTH))  # lower case, see moderation.accounts.USERNAME_RE
    password_hash: Mapped[str] = mapped_column(String(255))  # argon2id, PHC string
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    password_changed_at: Mapped[datetime] = mapped_column(DateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (
        UniqueConstraint("username", name="uq_moderators_username"),
        CheckConstraint(one_of("role", ROLES), name="ck_moderators_role"),
    )


class LoginSession(Base):
    """A logged-in browser. Only the sha256 of the cookie's token is kept; the CSRF token is per session."""

    __tablename__ = "moderator_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(Integer, ForeignKey("moderators.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)  # absolute limit
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)  # for the idle limit
    ip: Mapped[str] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(200))

    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_moderator_sessions_token_hash"),
        Index("ix_moderator_sessions_user", "user_id"),
    )


class LoginAttempt(Base):
    """One login try, for throttling (failures per username and IP) and for admins to read."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(USERNAME_LENGTH))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime)
    success: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_login_attempts_username_ip_at", "username", "ip", "at"),
        Index("ix_login_attempts_ip_at", "ip", "at"),
    )


class CommentLabel(Base):
    """A moderator's decision on one tag of one comment: the final label, next to what the model said.

    label == model_label: confirmed; model_label and not label: rejected (false positive);
    label and not model_label: added (missed). No row: not reviewed, the model's tag stands.
    """

    __tablename__ = "comment_labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The comment's natural key, as in `comments` (no foreign key: the scoring tables stay
    # independent of the moderation ones, e.g. for TRUNCATE).
    community_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    comment_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    tag: Mapped[str] = mapped_column(String(16))
    label: Mapped[bool] = mapped_column(Boolean)
    model_label: Mapped[bool] = mapped_column(Boolean)
    moderator_id: Mapped[int] = mapped_column(Integer, ForeignKey("moderators.id"))
    decided_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("community_id", "comment_id", "tag", name="uq_comment_labels_comment_tag"),
        CheckConstraint(one_of("tag", TAGS), name="ck_comment_labels_tag"),
        Index("ix_comment_labels_decided_at", "decided_at"),
    )


class AuditEntry(Base):
    """One moderator action, written in the same transaction as the change it records."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    actor_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("moderators.id"), nullable=True)
    actor: Mapped[str] = mapped_column(String(100))  # the username then (or "cli:<user>")
    action: Mapped[str] = mapped_column(String(32))
    community_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    thread_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    comment_id: Mapped[str | None] = mapped_column(String(ID_LENGTH), nullable=True)
    tag: Mapped[str | None] = mapped_column(String(16), nullable=True)
    target_user: Mapped[str | None] = mapped_column(String(USERNAME_LENGTH), nullable=True)
    before: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    after: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_actor_at", "actor", "at"),
        Index("ix_audit_log_community_thread", "community_id", "thread_id"),
        Index("ix_audit_log_action_at", "action", "at"),
    )


class AuditLogIsAppendOnly(RuntimeError):
    """Raised when code tries to change or delete an audit entry."""


@event.listens_for(Session, "before_flush")
def _refuse_audit_changes(session: Session, _context: Any, _instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEntry) and (obj in session.deleted or session.is_modified(obj)):
            raise AuditLogIsAppendOnly(f"audit entry {obj.id} cannot be changed or deleted")
