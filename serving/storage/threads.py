"""Threads flagged for moderators: the one query behind both `GET /v1/flags` and the moderator queue.

Usage (inside a session):
    rows, total = flagged_threads(session, FlagLimits(3, 0.5, 2), status="open", sort="worst", limit=50, offset=0)
    why = flag_reasons(rows[0], limits)      # [FlagReason("hostile_count", 4, 3), ...]

A thread is flagged when it holds at least `hostile_count` hostile comments, or when at least
`hostile_share` of its comments are hostile (counted only from `min_comments` comments on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, exists, func, nulls_last, or_, select
from sqlalchemy.orm import Session

from serving.storage.models import Comment, Thread

FlagSort = Literal["newest", "worst"]


@dataclass(frozen=True)
class FlagLimits:
    hostile_count: int  # flagged at this many hostile comments
    hostile_share: float  # ... or at this share of hostile comments
    min_comments: int  # ... counted only from this many comments in the thread


@dataclass(frozen=True)
class FlagReason:
    """One limit a thread reached: `value` (its count or share) >= `limit`."""

    kind: Literal["hostile_count", "hostile_share"]
    value: float
    limit: float


def hostile_share(thread: Thread) -> float:
    return thread.hostile_count / thread.comment_count if thread.comment_count else 0.0


def flag_reasons(thread: Thread, limits: FlagLimits) -> list[FlagReason]:
    """Which limits the thread reached (the same test as `flag_condition`, in Python)."""
    out = []
    if thread.hostile_count >= limits.hostile_count:
        out.append(FlagReason("hostile_count", thread.hostile_count, limits.hostile_count))
    share = hostile_share(thread)
    if thread.comment_count >= limits.min_comments and thread.hostile_count and share >= limits.hostile_share:
        out.append(FlagReason("hostile_share", share, limits.hostile_share))
    return out


def flag_condition(limits: FlagLimits) -> ColumnElement[bool]:
    # share >= limit, written without division so it stays exact and index-friendly
    return or_(
        Thread.hostile_count >= limits.hostile_count,
        (Thread.comment_count >= limits.min_comments)
        & (Thread.hostile_count > 0)
        & (Thread.hostile_count >= Thread.comment_count * limits.hostile_share),
    )


def _has_comment_in(lang: str) -> ColumnElement[bool]:
    return exists().where(
        Comment.community_id == Thread.community_id,
        Comment.thread_id == Thread.thread_id,
        Comment.lang == lang,
    )


def flagged_threads(
    session: Session,
    limits: FlagLimits,
    *,
    community_id: str | None = None,
    status: str | None = None,
    lang: str | None = None,
    sort: FlagSort,
    limit: int,
    offset: int,
) -> tuple[list[Thread], int]:
    """Flagged threads, one page of them, and how many there are in all.

    Filters (None: any): community, review status, and a language that one of the thread's
    comments is in. `newest`: latest hostile comment first, then most hostile comments, then
    highest share. `worst`: most hostile comments first, then highest share, then latest hostile
    comment. Ties go to the older thread row.
    """
    query = select(Thread).where(flag_condition(limits))
    if community_id is not None:
        query = query.where(Thread.community_id == community_id)
    if status is not None:
        query = query.where(Thread.status == status)
    if lang:
        query = query.where(_has_comment_in(lang))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    share = Thread.hostile_count * 1.0 / Thread.comment_count
    newest = nulls_last(Thread.last_hostile_at.desc())
    order: list[Any]
    if sort == "newest":
        order = [newest, Thread.hostile_count.desc(), share.desc()]
    else:
        order = [Thread.hostile_count.desc(), share.desc(), newest]
    rows = session.scalars(query.order_by(*order, Thread.id).limit(limit).offset(offset)).all()
    return list(rows), int(total)


def flagged_communities(session: Session, limits: FlagLimits, limit: int = 500) -> list[str]:
    """Communities that have flagged threads, sorted."""
    return list(
        session.scalars(
            select(Thread.community_id)
            .where(flag_condition(limits))
            .distinct()
            .order_by(Thread.community_id)
            .limit(limit)
        )
    )
