"""Write and read scored comments, keeping per-thread counters in step.

Usage (inside a session):
    stored = find_results(session, [("c1", "42")])
    inserted = insert_scored(session, rows, model_name="m", model_version="1")
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from serving.labels import TAGS
from serving.storage.models import Comment, Thread
from serving.storage.webhooks import BumpedThread, thread_bumped
from serving.timefmt import utcnow

Key = tuple[str, str]  # (community_id, comment_id); community "" when none was given


@dataclass(frozen=True)
class NewComment:
    community_id: str
    comment_id: str
    thread_id: str | None
    author_id: str | None
    parent_id: str | None
    text: str
    lang: str
    created_at: datetime  # naive UTC
    scores: dict[str, float]
    tags: list[str]
    truncated: bool

    @property
    def key(self) -> Key:
        return (self.community_id, self.comment_id)


@dataclass(frozen=True)
class StoredResult:
    scores: dict[str, float]
    tags: list[str]
    lang: str
    truncated: bool
    text: str  # what was scored: a resend with another text is a conflict, not a new score


def scores_of(row: Comment) -> dict[str, float]:
    return {tag: float(getattr(row, f"p_{tag}")) for tag in TAGS}


def tags_of(row: Comment) -> list[str]:
    return [tag for tag in TAGS if getattr(row, tag)]


def result_of(row: Comment) -> StoredResult:
    return StoredResult(scores=scores_of(row), tags=tags_of(row), lang=row.lang, truncated=row.truncated, text=row.text)


def _insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"the store supports sqlite and postgresql, not {dialect}")


def find_results(session: Session, keys: Iterable[Key]) -> dict[Key, StoredResult]:
    """Stored results for the keys that exist."""
    by_community: dict[str, list[str]] = defaultdict(list)
    for community_id, comment_id in keys:
        by_community[community_id].append(comment_id)
    found: dict[Key, StoredResult] = {}
    for community_id, ids in by_community.items():
        for start in range(0, len(ids), 500):
            rows = session.scalars(
                select(Comment).where(
                    Comment.community_id == community_id, Comment.comment_id.in_(ids[start : start + 500])
                )
            )
            for row in rows:
                found[(row.community_id, row.comment_id)] = result_of(row)
    return found


def insert_scored(session: Session, rows: Sequence[NewComment], *, model_name: str, model_version: str) -> set[Key]:
    """Insert the rows that are not stored yet; return the keys actually inserted.

    A row whose key already exists (sent twice, or by a concurrent request) is left alone: the first
    write wins and counts once. Rows go in key order so concurrent PostgreSQL writers lock alike.
    """
    if not rows:
        return set()
    received_at = utcnow()
    values = [
        {
            "community_id": r.community_id,
            "comment_id": r.comment_id,
            "thread_id": r.thread_id,
            "author_id": r.author_id,
            "parent_id": r.parent_id,
            "text": r.text,
            "lang": r.lang,
            "created_at": r.created_at,
            "received_at": received_at,
            **{f"p_{tag}": float(r.scores[tag]) for tag in TAGS},
            **{tag: tag in r.tags for tag in TAGS},
            "truncated": r.truncated,
            "model_name": model_name,
            "model_version": model_version,
        }
        for r in sorted(rows, key=lambda r: r.key)
    ]
    stmt = (
        _insert(session, Comment)
        .on_conflict_do_nothing(index_elements=["community_id", "comment_id"])
        .returning(Comment.community_id, Comment.comment_id)
    )
    inserted = {(c, i) for c, i in session.execute(stmt, values).all()}
    _bump_threads(session, [r for r in rows if r.key in inserted and r.thread_id], received_at)
    return inserted


def _bump_threads(session: Session, rows: Sequence[NewComment], now: datetime) -> None:
    """Add freshly inserted comments to their threads' counters (creating the threads), and write
    a `thread.flagged` webhook event, in this transaction, for each thread that became flagged."""
    groups: dict[tuple[str, str], list[NewComment]] = defaultdict(list)
    for r in rows:
        assert r.thread_id is not None
        groups[(r.community_id, r.thread_id)].append(r)
    bumped = []
    for (community_id, thread_id), members in sorted(groups.items()):
        hostile_times = [m.created_at for m in members if "hostile" in m.tags]
        counts = {f"{tag}_count": sum(tag in m.tags for m in members) for tag in TAGS}
        stmt = _insert(session, Thread).values(
            community_id=community_id,
            thread_id=thread_id,
            status="open",
            comment_count=len(members),
            **counts,
            first_at=min(m.created_at for m in members),
            last_at=max(m.created_at for m in members),
            last_hostile_at=max(hostile_times) if hostile_times else None,
            updated_at=now,
        )
        new = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["community_id", "thread_id"],
            set_={
                "comment_count": Thread.comment_count + new.comment_count,
                **{f"{tag}_count": getattr(Thread, f"{tag}_count") + new[f"{tag}_count"] for tag in TAGS},
                "first_at": case((new.first_at < Thread.first_at, new.first_at), else_=Thread.first_at),
                "last_at": case((new.last_at > Thread.last_at, new.last_at), else_=Thread.last_at),
                "last_hostile_at": case(
                    (new.last_hostile_at.is_(None), Thread.last_hostile_at),
                    (Thread.last_hostile_at.is_(None), new.last_hostile_at),
                    (new.last_hostile_at > Thread.last_hostile_at, new.last_hostile_at),
                    else_=Thread.last_hostile_at,
                ),
                "updated_at": new.updated_at,
            },
        )
        status, count, hostile = session.execute(
            stmt.returning(Thread.status, Thread.comment_count, Thread.hostile_count)
        ).one()
        bumped.append(BumpedThread(community_id, thread_id, status, count, hostile, len(members), len(hostile_times)))
    thread_bumped(session, bumped)


def _thread_query(thread_id: str, community_id: str | None) -> Select[Any]:
    query = select(Comment).where(Comment.thread_id == thread_id)
    if community_id is not None:
        query = query.where(Comment.community_id == community_id)
    return query


def thread_comments(
    session: Session, thread_id: str, community_id: str | None, *, limit: int, offset: int
) -> tuple[list[Comment], int]:
    """A thread's comments, oldest first, and how many there are in all."""
    base = _thread_query(thread_id, community_id)
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = session.scalars(
        base.order_by(Comment.created_at, Comment.community_id, Comment.comment_id).limit(limit).offset(offset)
    ).all()
    return list(rows), int(total)


def count_comments(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Comment)) or 0)
