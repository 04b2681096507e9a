"""`community.hostility_spike`: a community's hostile share in the last window, against its own
baseline.

    window   = comments created in the last `spike_window_minutes` (default 60)
    baseline = comments created in the `spike_baseline_days` (default 7) before the window
    share    = comments tagged hostile / comments, in each
    spike starts when window share >= baseline share + margin (default 0.15), with at least
             `spike_min_comments` (20) in the window and `spike_min_baseline_comments` (100) in the
             baseline; it ends (and may fire again later) when the window share falls below
             baseline share + margin / 2.

Checked by the delivery worker every `spike_check_seconds`, only while some endpoint subscribes,
for communities that got comments since the last check or have an open spike. The spike row and
its event are written in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from serving.storage.models import Comment
from serving.storage.webhooks import CommunitySpike, enqueue_event, rfc3339, subscribers
from serving.webhooks.settings import WebhookSettings

EVENT = "community.hostility_spike"


@dataclass(frozen=True)
class Share:
    comments: int
    hostile: int

    @property
    def share(self) -> float:
        return self.hostile / self.comments if self.comments else 0.0


def share_between(session: Session, community_id: str, start: datetime, end: datetime) -> Share:
    count, hostile = session.execute(
        select(func.count(), func.coalesce(func.sum(case((Comment.hostile, 1), else_=0)), 0)).where(
            Comment.community_id == community_id, Comment.created_at >= start, Comment.created_at < end
        )
    ).one()
    return Share(int(count), int(hostile))


def check_community(session: Session, settings: WebhookSettings, community_id: str, now: datetime) -> bool:
    """Open or close this community's spike; True when a spike started (and its event was written)."""
    window_start = now - timedelta(minutes=settings.spike_window_minutes)
    baseline_start = window_start - timedelta(days=settings.spike_baseline_days)
    window = share_between(session, community_id, window_start, now + timedelta(seconds=1))
    baseline = share_between(session, community_id, baseline_start, window_start)
    open_spike = session.scalar(
        select(CommunitySpike).where(CommunitySpike.community_id == community_id, CommunitySpike.ended_at.is_(None))
    )
    limit = baseline.share + settings.spike_margin
    if open_spike is not None:
        if window.share < baseline.share + settings.spike_margin / 2:
            open_spike.ended_at = now
        return False
    enough = (
        window.comments >= settings.spike_min_comments and baseline.comments >= settings.spike_min_baseline_comments
    )
    if not enough or window.share < limit:
        return False
    session.add(
        CommunitySpike(
            community_id=community_id, started_at=now, window_share=window.share, baseline_share=baseline.share
        )
    )
    enqueue_event(
        session,
        EVENT,
        {
            "community_id": community_id or None,
            "window": {
                "start": rfc3339(window_start),
                "end": rfc3339(now),
                "comments": window.comments,
                "hostile": window.hostile,
                "hostile_share": round(window.share, 6),
            },
            "baseline": {
                "start": rfc3339(baseline_start),
                "end": rfc3339(window_start),
                "comments": baseline.comments,
                "hostile": baseline.hostile,
                "hostile_share": round(baseline.share, 6),
            },
            "margin": settings.spike_margin,
        },
        subject=community_id,
    )
    return True


class SpikeWatcher:
    """Remembers the last comment row it has seen, so each check only looks at active communities."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self.seen_id = 0

    def check(self, session: Session, now: datetime) -> int:
        """Check the communities that changed; return how many spikes started."""
        newest = session.scalar(select(func.max(Comment.id))) or 0
        if not subscribers(session, EVENT):
            self.seen_id = newest
            return 0
        touched = set(session.scalars(select(Comment.community_id).where(Comment.id > self.seen_id).distinct()))
        touched |= set(session.scalars(select(CommunitySpike.community_id).where(CommunitySpike.ended_at.is_(None))))
        started = sum(check_community(session, self.settings, c, now) for c in sorted(touched))
        self.seen_id = newest
        return started
