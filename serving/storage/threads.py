"""Threads flagged for moderators: hostile count or hostile share at or above the limits.

Usage (inside a session):
    rows, total = flagged_threads(session, FlagLimits(3, 0.5, 2), status="open", limit=50, offset=0)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, func, nulls_last, or_, select
from sqlalchemy.orm import Session

from serving.storage.models import Thread

FlagSort = Literal["newest", "worst"]


@dataclass(frozen=True)
class FlagLimits:
    hostile_count: int  # flagged at this many hostile comments
    hostile_share: float  # ... or at this share of hostile comments
    min_comments: int  # ... counted only from this many comments in the thread


def flag_condition(limits: FlagLimits) -> ColumnElement[bool]:
    # share >= limit, written without division so it stays exact and index-friendly
    return or_(
        Thread.hostile_count >= limits.hostile_count,
        (Thread.comment_count >= limits.min_comments)
        & (Thread.hostile_count > 0)
        & (Thread.hostile_count >= Thread.comment_count * limits.hostile_share),
    )


def flagged_threads(
    session: Session,
    limits: FlagLimits,
    *,
    community_id: str | None,
    status: str | None,
    sort: FlagSort,
    limit: int,
    offset: int,
) -> tuple[list[Thread], int]:
    """Flagged threads, one page of them, and how many there are in all.

    `newest`: latest hostile comment first, then most hostile comments, then highest share.
    `worst`: most hostile comments first, then highest share, then latest hostile comment.
    """
    query = select(Thread).where(flag_condition(limits))
    if community_id is not None:
        query = query.where(Thread.community_id == community_id)
    if status is not None:
        query = query.where(Thread.status == status)
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
