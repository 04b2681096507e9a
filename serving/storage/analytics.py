"""Community belonging over time, and how newcomers' first comments are answered: the one place
where the belonging index, tag rates and newcomer reception are computed, for the API
(`GET /v1/communities/{id}/belonging`) and the moderator pages (community view) alike.

Usage (inside a session):
    series = belonging_by_bucket(session, "c1", since, until, "day")   # [(bucket start, TagCounts)]
    series[0][1].belonging_index, series[0][1].rates
    reception = newcomer_reception(session, "c1", since, until)        # reception.replies.rates

belonging index = (comments tagged welcoming or curious - comments tagged hostile) / comments, in
[-1, 1]; None for no comments. All times are naive UTC; the range is [since, until).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from serving.labels import TAGS
from serving.storage.models import Comment

Bucket = Literal["hour", "day"]
BUCKET_STEP = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
REPLY_WINDOW = timedelta(hours=24)
_CHUNK = 500


@dataclass
class TagCounts:
    count: int = 0
    tags: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TAGS, 0))
    welcoming_or_curious: int = 0  # comments carrying either tag, counted once

    def add(self, other: TagCounts) -> None:
        self.count += other.count
        self.welcoming_or_curious += other.welcoming_or_curious
        for tag in TAGS:
            self.tags[tag] += other.tags[tag]

    @classmethod
    def total(cls, parts: Iterable[TagCounts]) -> TagCounts:
        out = cls()
        for part in parts:
            out.add(part)
        return out

    @property
    def belonging_index(self) -> float | None:
        if not self.count:
            return None
        return (self.welcoming_or_curious - self.tags["hostile"]) / self.count

    @property
    def rates(self) -> dict[str, float | None]:
        """Share of the comments carrying each tag (None for no comments)."""
        return {tag: self.tags[tag] / self.count if self.count else None for tag in TAGS}


def bucket_start(value: datetime, bucket: Bucket) -> datetime:
    if bucket == "hour":
        return value.replace(minute=0, second=0, microsecond=0)
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_starts(since: datetime, until: datetime, bucket: Bucket) -> Iterator[datetime]:
    start = bucket_start(since, bucket)
    while start < until:
        yield start
        start += BUCKET_STEP[bucket]


def _bucket_expr(session: Session, bucket: Bucket) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.date_trunc(bucket, Comment.created_at)
    fmt = "%Y-%m-%d %H:00:00" if bucket == "hour" else "%Y-%m-%d 00:00:00"
    return func.strftime(fmt, Comment.created_at)


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _count_true(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def tag_counts_by_bucket(
    session: Session, community_id: str, since: datetime, until: datetime, bucket: Bucket
) -> dict[datetime, TagCounts]:
    """Comment and tag counts per bucket start, for buckets that have comments."""
    start = _bucket_expr(session, bucket).label("start")
    query = (
        select(
            start,
            func.count().label("n"),
            *(_count_true(getattr(Comment, tag)).label(tag) for tag in TAGS),
            _count_true(or_(Comment.welcoming, Comment.curious)).label("w_or_c"),
        )
        .where(Comment.community_id == community_id, Comment.created_at >= since, Comment.created_at < until)
        .group_by(start)
    )
    out: dict[datetime, TagCounts] = {}
    for row in session.execute(query).mappings():
        out[_as_datetime(row["start"])] = TagCounts(
            count=int(row["n"]),
            tags={tag: int(row[tag]) for tag in TAGS},
            welcoming_or_curious=int(row["w_or_c"]),
        )
    return out


def belonging_by_bucket(
    session: Session, community_id: str, since: datetime, until: datetime, bucket: Bucket
) -> list[tuple[datetime, TagCounts]]:
    """Every bucket of the range in order, with its counts (zero for a bucket without comments)."""
    counts = tag_counts_by_bucket(session, community_id, since, until, bucket)
    return [(start, counts.get(start, TagCounts())) for start in bucket_starts(since, until, bucket)]


@dataclass
class Reception:
    newcomers: int = 0  # authors whose first comment in the community falls in the range
    answered: int = 0  # of those, how many got at least one reply within 24 h
    replies: TagCounts = field(default_factory=TagCounts)


def newcomer_reception(session: Session, community_id: str, since: datetime, until: datetime) -> Reception:
    """For each author's first comment in the community (made in [since, until)), tally the replies
    (comments whose parent_id is that comment, by someone else, within 24 h of it) by tag."""
    first_seen = (
        select(Comment.author_id, func.min(Comment.created_at).label("first_at"))
        .where(Comment.community_id == community_id, Comment.author_id.is_not(None))
        .group_by(Comment.author_id)
        .subquery()
    )
    firsts_query = (
        select(Comment.comment_id, Comment.author_id, Comment.created_at)
        .join(
            first_seen,
            and_(Comment.author_id == first_seen.c.author_id, Comment.created_at == first_seen.c.first_at),
        )
        .where(
            Comment.community_id == community_id,
            first_seen.c.first_at >= since,
            first_seen.c.first_at < until,
        )
        .order_by(Comment.author_id, Comment.comment_id)
    )
    firsts: dict[str, tuple[str, datetime]] = {}  # comment_id -> (author, time)
    seen_authors: set[str] = set()
    for comment_id, author_id, created_at in session.execute(firsts_query):
        if author_id is not None and author_id not in seen_authors:  # two comments at the same first instant: keep one
            seen_authors.add(author_id)
            firsts[comment_id] = (author_id, created_at)

    reception = Reception(newcomers=len(firsts))
    answered: set[str] = set()
    ids = list(firsts)
    for start in range(0, len(ids), _CHUNK):
        replies = session.execute(
            select(
                Comment.parent_id, Comment.author_id, Comment.created_at, *(getattr(Comment, t) for t in TAGS)
            ).where(
                Comment.community_id == community_id,
                Comment.parent_id.in_(ids[start : start + _CHUNK]),
                Comment.created_at >= since,
                Comment.created_at < until + REPLY_WINDOW,
            )
        )
        for parent_id, author_id, created_at, *flags in replies:
            newcomer, first_at = firsts[parent_id]
            if author_id == newcomer or not first_at <= created_at <= first_at + REPLY_WINDOW:
                continue
            answered.add(parent_id)
            reception.replies.count += 1
            tagged = dict(zip(TAGS, flags, strict=True))
            reception.replies.welcoming_or_curious += bool(tagged["welcoming"] or tagged["curious"])
            for tag in TAGS:
                reception.replies.tags[tag] += bool(tagged[tag])
    reception.answered = len(answered)
    return reception
