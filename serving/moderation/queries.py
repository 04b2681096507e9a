"""Read models for the pages: the queue, a thread in reply order, a community's belonging.

Usage (inside a session):
    rows, total = queue(db, limits, QueueFilter(status="open", lang="en"), limit=25, offset=0)
    view = thread_view(db, find_thread(db, 7), page=1, page_size=100)
    report = community_report(db, "c1", limits, days=30)

Which threads are flagged, in which order, and why, and every belonging figure, come from the
query layer the JSON API uses too (serving.storage.threads and serving.storage.analytics); this
module only adds what the pages show besides (languages, review counts, reply order).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select, tuple_
from sqlalchemy.orm import Session

from serving.labels import TAGS
from serving.moderation.review import decisions_for, final_labels, tag_state
from serving.storage.analytics import (
    BUCKET_STEP,
    Bucket,
    Reception,
    TagCounts,
    belonging_by_bucket,
    bucket_start,
    newcomer_reception,
)
from serving.storage.models import Comment, Thread
from serving.storage.moderation import AuditEntry, CommentLabel
from serving.storage.threads import FlagLimits, FlagReason, FlagSort, flag_reasons, flagged_threads
from serving.timefmt import utcnow

MAX_THREAD_COMMENTS = 5000  # a thread page orders at most this many comments into reply order
MAX_DEPTH_CLASS = 8


# --- the queue ---


@dataclass(frozen=True)
class QueueFilter:
    community_id: str | None = None
    lang: str | None = None
    status: str | None = "open"  # None: any
    sort: FlagSort = "worst"


@dataclass
class QueueRow:
    thread: Thread
    langs: list[tuple[str, int]]
    hostile_rejected: int = 0  # hostile tags moderators rejected in this thread
    hostile_added: int = 0


def queue(
    db: Session, limits: FlagLimits, where: QueueFilter, *, limit: int, offset: int
) -> tuple[list[QueueRow], int]:
    """Flagged threads in the order of `GET /v1/flags` (serving.storage.threads.flagged_threads)."""
    threads, total = flagged_threads(
        db,
        limits,
        community_id=where.community_id,
        status=where.status,
        lang=where.lang,
        sort=where.sort,
        limit=limit,
        offset=offset,
    )
    return _decorate(db, threads), total


def _decorate(db: Session, threads: list[Thread]) -> list[QueueRow]:
    keys = [(t.community_id, t.thread_id) for t in threads]
    langs: dict[tuple[str, str | None], Counter[str]] = defaultdict(Counter)
    rejected: Counter[tuple[str, str | None]] = Counter()
    added: Counter[tuple[str, str | None]] = Counter()
    if keys:
        for community_id, thread_id, lang, n in db.execute(
            select(Comment.community_id, Comment.thread_id, Comment.lang, func.count())
            .where(tuple_(Comment.community_id, Comment.thread_id).in_(keys))
            .group_by(Comment.community_id, Comment.thread_id, Comment.lang)
        ):
            langs[(community_id, thread_id)][lang] = int(n)
        for community_id, thread_id, model_label in db.execute(
            select(Comment.community_id, Comment.thread_id, CommentLabel.model_label)
            .join(
                CommentLabel,
                and_(CommentLabel.community_id == Comment.community_id, CommentLabel.comment_id == Comment.comment_id),
            )
            .where(
                tuple_(Comment.community_id, Comment.thread_id).in_(keys),
                CommentLabel.tag == "hostile",
                CommentLabel.label != CommentLabel.model_label,
            )
        ):
            (rejected if model_label else added)[(community_id, thread_id)] += 1
    return [
        QueueRow(
            thread=t,
            langs=langs[(t.community_id, t.thread_id)].most_common(3),
            hostile_rejected=rejected[(t.community_id, t.thread_id)],
            hostile_added=added[(t.community_id, t.thread_id)],
        )
        for t in threads
    ]


def reason_text(reason: FlagReason) -> str:
    """As the pages word it: "4 hostile ≥ 3", "60% hostile ≥ 50%"."""
    if reason.kind == "hostile_count":
        return f"{int(reason.value)} hostile ≥ {int(reason.limit)}"
    return f"{reason.value:.0%} hostile ≥ {reason.limit:.0%}"


def reason_texts(thread: Thread, limits: FlagLimits) -> list[str]:
    return [reason_text(r) for r in flag_reasons(thread, limits)]


def language_options(db: Session) -> list[str]:
    return list(db.scalars(select(Comment.lang).distinct().order_by(Comment.lang).limit(200)))


# --- a thread ---


@dataclass
class CommentView:
    comment: Comment
    depth: int
    states: dict[str, str]  # tag -> confirmed / rejected / added / model / none / confirmed-absent
    final: dict[str, int]
    reviewed: bool
    orphan: bool = False  # replies to a comment that is not stored

    @property
    def depth_class(self) -> str:
        return f"depth-{min(self.depth, MAX_DEPTH_CLASS)}"

    @property
    def hostile(self) -> bool:
        return bool(self.final["hostile"])


@dataclass
class ThreadView:
    thread: Thread
    comments: list[CommentView]
    total: int
    page: int
    pages: int
    truncated: bool  # the thread has more than MAX_THREAD_COMMENTS comments
    history: list[AuditEntry] = field(default_factory=list)
    hostile_final: int = 0  # in the shown comments, after review


def reply_order(comments: list[Comment]) -> list[tuple[Comment, int, bool]]:
    """(comment, depth, orphan) with each reply under its parent, siblings oldest first."""
    by_id = {c.comment_id: c for c in comments}
    children: dict[str, list[Comment]] = defaultdict(list)
    roots: list[tuple[Comment, bool]] = []
    for c in comments:  # already oldest first
        if c.parent_id and c.parent_id in by_id and c.parent_id != c.comment_id:
            children[c.parent_id].append(c)
        else:
            roots.append((c, bool(c.parent_id)))
    out: list[tuple[Comment, int, bool]] = []
    seen: set[str] = set()
    for root, orphan in roots:
        stack = [(root, 0, orphan)]
        while stack:
            node, depth, is_orphan = stack.pop()
            if node.comment_id in seen:
                continue
            seen.add(node.comment_id)
            out.append((node, depth, is_orphan))
            stack.extend((child, depth + 1, False) for child in reversed(children.get(node.comment_id, [])))
    # A reply cycle (a -> b -> a) has no root: show what is left flat, oldest first.
    out.extend((c, 0, True) for c in comments if c.comment_id not in seen)
    return out


def find_thread(db: Session, thread_pk: int) -> Thread | None:
    return db.get(Thread, thread_pk)


def thread_view(db: Session, thread: Thread, *, page: int, page_size: int) -> ThreadView:
    comments = list(
        db.scalars(
            select(Comment)
            .where(Comment.community_id == thread.community_id, Comment.thread_id == thread.thread_id)
            .order_by(Comment.created_at, Comment.comment_id)
            .limit(MAX_THREAD_COMMENTS + 1)
        )
    )
    truncated = len(comments) > MAX_THREAD_COMMENTS
    ordered = reply_order(comments[:MAX_THREAD_COMMENTS])
    total = len(ordered)
    pages = max(1, -(-total // page_size))
    page = min(max(page, 1), pages)
    shown = ordered[(page - 1) * page_size : page * page_size]
    decisions = decisions_for(db, [(c.community_id, c.comment_id) for c, _, _ in shown])
    views = []
    for comment, depth, orphan in shown:
        mine = decisions.get((comment.community_id, comment.comment_id), {})
        views.append(
            CommentView(
                comment=comment,
                depth=depth,
                orphan=orphan,
                reviewed=bool(mine),
                states={tag: tag_state(comment, mine, tag) for tag in TAGS},
                final=final_labels(comment, mine),
            )
        )
    history = list(
        db.scalars(
            select(AuditEntry)
            .where(
                AuditEntry.community_id == thread.community_id,
                AuditEntry.thread_id == thread.thread_id,
                AuditEntry.action.startswith("thread."),
            )
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
            .limit(10)
        )
    )
    return ThreadView(
        thread=thread,
        comments=views,
        total=total,
        page=page,
        pages=pages,
        truncated=truncated,
        history=history,
        hostile_final=sum(v.hostile for v in views),
    )


def thread_pk_of(db: Session, community_id: str | None, thread_id: str | None) -> int | None:
    if community_id is None or thread_id is None:
        return None
    return db.scalar(select(Thread.id).where(Thread.community_id == community_id, Thread.thread_id == thread_id))


# --- a community ---

SPANS: dict[int, Bucket] = {2: "hour", 7: "day", 30: "day", 90: "day", 365: "day"}


@dataclass
class Point:
    start: datetime
    counts: TagCounts

    @property
    def index(self) -> float | None:
        return self.counts.belonging_index


@dataclass
class CommunityReport:
    community_id: str
    days: int
    bucket: str
    since: datetime
    until: datetime
    points: list[Point]
    totals: TagCounts
    reception: Reception
    top_threads: list[QueueRow]
    last_comment_at: datetime | None

    @property
    def index(self) -> float | None:
        return self.totals.belonging_index


def community_report(db: Session, community_id: str, limits: FlagLimits, *, days: int) -> CommunityReport:
    """The belonging index per bucket over `days` days ending with the community's latest comment
    (or now), tag rates, newcomer reception and the worst flagged threads."""
    bucket = SPANS.get(days, "day")
    last = db.scalar(select(func.max(Comment.created_at)).where(Comment.community_id == community_id))
    anchor = min(last, utcnow()) if last is not None else utcnow()
    until = bucket_start(anchor, bucket) + BUCKET_STEP[bucket]
    since = until - timedelta(days=days)
    points = [Point(start, counts) for start, counts in belonging_by_bucket(db, community_id, since, until, bucket)]
    totals = TagCounts.total(p.counts for p in points)
    top, _ = queue(db, limits, QueueFilter(community_id=community_id, status=None), limit=10, offset=0)
    return CommunityReport(
        community_id=community_id,
        days=days,
        bucket=bucket,
        since=since,
        until=until,
        points=points,
        totals=totals,
        reception=newcomer_reception(db, community_id, since, until),
        top_threads=top,
        last_comment_at=last,
    )


def community_exists(db: Session, community_id: str) -> bool:
    return db.scalar(select(Comment.id).where(Comment.community_id == community_id).limit(1)) is not None
