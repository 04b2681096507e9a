"""The audit log: who did what, when, with the state before and after. Insert and read only.

Usage:
    record(db, actor, "tag.reject", community_id="c1", thread_id="t1", comment_id="42", tag="hostile",
           before={"welcoming": 0, "curious": 0, "hostile": 1}, after={...})
    page = list_entries(db, AuditFilter(actor="alice"), limit=25, offset=0)

`record` only adds a row to the caller's transaction, so the action and its entry commit or roll
back together.
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from serving.storage.moderation import AuditEntry
from serving.timefmt import utcnow

ACTIONS = {
    "tag.confirm": "confirmed a tag",
    "tag.reject": "rejected a tag (false positive)",
    "tag.add": "added a missed tag",
    "tag.clear": "cleared a tag decision",
    "comment.accept": "accepted all labels",
    "thread.resolve": "resolved a thread",
    "thread.dismiss": "dismissed a thread",
    "thread.reopen": "reopened a thread",
    "user.create": "created a user",
    "user.role": "changed a role",
    "user.disable": "disabled a user",
    "user.enable": "enabled a user",
    "user.password": "set a password",
}


@dataclass(frozen=True)
class Actor:
    id: int | None  # the moderator's id; None for the command line
    name: str
    ip: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        try:
            who = getpass.getuser()
        except Exception:  # no login name in some containers
            who = "unknown"
        return cls(id=None, name=f"cli:{who}"[:100])


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def record(
    db: Session,
    actor: Actor,
    action: str,
    *,
    community_id: str | None = None,
    thread_id: str | None = None,
    comment_id: str | None = None,
    tag: str | None = None,
    target_user: str | None = None,
    before: Any = None,
    after: Any = None,
    reason: str | None = None,
) -> AuditEntry:
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    entry = AuditEntry(
        at=utcnow(),
        actor_id=actor.id,
        actor=actor.name,
        action=action,
        community_id=community_id,
        thread_id=thread_id,
        comment_id=comment_id,
        tag=tag,
        target_user=target_user,
        before=_json(before),
        after=_json(after),
        reason=reason,
        ip=actor.ip,
    )
    db.add(entry)
    db.flush()
    return entry


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None  # an exact action, or a prefix such as "tag." / "thread." / "user."
    community_id: str | None = None
    thread_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def list_entries(db: Session, where: AuditFilter, *, limit: int, offset: int) -> tuple[list[AuditEntry], int]:
    """Newest first, one page, and how many match in all."""
    query = select(AuditEntry)
    if where.actor:
        query = query.where(AuditEntry.actor == where.actor)
    if where.action:
        if where.action.endswith("."):
            query = query.where(AuditEntry.action.startswith(where.action, autoescape=True))
        else:
            query = query.where(AuditEntry.action == where.action)
    if where.community_id is not None:
        query = query.where(AuditEntry.community_id == where.community_id)
    if where.thread_id is not None:
        query = query.where(AuditEntry.thread_id == where.thread_id)
    if where.since is not None:
        query = query.where(AuditEntry.at >= where.since)
    if where.until is not None:
        query = query.where(AuditEntry.at < where.until)
    total = db.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = db.scalars(query.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit).offset(offset))
    return list(rows), int(total)


def actors(db: Session) -> list[str]:
    return list(db.scalars(select(AuditEntry.actor).distinct().order_by(AuditEntry.actor).limit(500)))


def decode(value: str | None) -> Any:
    return None if value is None else json.loads(value)
