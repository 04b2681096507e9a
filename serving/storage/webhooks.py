"""Webhook endpoints and the durable outbox: events, one delivery per (event, endpoint), attempts.

Usage (inside the transaction that makes the change the event reports):
    enqueue_event(session, "thread.resolved", {"thread_id": "t1", ...}, subject="c1/t1")
The delivery worker (serving.webhooks.delivery) then sends what is due, endpoint by endpoint:
    lease_endpoint(session, endpoint_id, owner, until=..., now=...)   # one sender per endpoint
    delivery = next_delivery(session, endpoint_id)                    # the oldest one not done

An event is written only when an enabled endpoint subscribes to its type, and in the caller's
transaction: it commits or rolls back with the change, and survives restarts. Its body is fixed
when it is written, so every retry sends the same bytes under the same `webhook-id`.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from serving.storage.models import ID_LENGTH, Base, Thread, one_of
from serving.storage.threads import FlagLimits, flag_reasons
from serving.timefmt import utcnow

EVENT_TYPES: tuple[str, ...] = ("thread.flagged", "community.hostility_spike", "thread.resolved")
TEST_EVENT = "webhook.test"
DELIVERY_STATUSES: tuple[str, ...] = ("pending", "delivered", "failed")
# Where the server puts its flag limits on every session (sessionmaker info), so the writer's
# transaction can tell when a thread becomes flagged. Absent: no thread.flagged events (CLI tools).
FLAG_LIMITS_INFO = "belong.flag_limits"


def rfc3339(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[str] = mapped_column(String(200))  # comma-separated, sorted
    description: Mapped[str] = mapped_column(String(200))
    secret_ciphertext: Mapped[str] = mapped_column(Text)  # the whsec_ secret, Fernet-encrypted
    created_at: Mapped[datetime] = mapped_column(DateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # kept for the log
    # One sender at a time per endpoint (across processes): deliveries stay in order.
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    @property
    def event_types(self) -> list[str]:
        return self.events.split(",") if self.events else []

    @property
    def active(self) -> bool:
        return self.disabled_at is None and self.removed_at is None


class WebhookEvent(Base):
    __tablename__ = "webhook_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    msg_id: Mapped[str] = mapped_column(String(40))  # the `webhook-id` header: same on every retry
    type: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(2 * ID_LENGTH + 1), nullable=True)  # "community/thread"
    payload: Mapped[str] = mapped_column(Text)  # the exact body sent
    created_at: Mapped[datetime] = mapped_column(DateTime)

    __table_args__ = (
        UniqueConstraint("msg_id", name="uq_webhook_events_msg_id"),
        Index("ix_webhook_events_type_subject", "type", "subject"),
    )


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(Integer, ForeignKey("webhook_events.id"))
    endpoint_id: Mapped[int] = mapped_column(Integer, ForeignKey("webhook_endpoints.id"))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    __table_args__ = (
        CheckConstraint(one_of("status", DELIVERY_STATUSES), name="ck_webhook_deliveries_status"),
        Index("ix_webhook_deliveries_endpoint_status", "endpoint_id", "status", "id"),
        Index("ix_webhook_deliveries_event", "event_id"),
    )


class WebhookAttempt(Base):
    """One try at sending a delivery: the log admins read (`belong webhooks log`)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(Integer, ForeignKey("webhook_deliveries.id"))
    at: Mapped[datetime] = mapped_column(DateTime)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)  # None: no HTTP answer
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_webhook_attempts_delivery", "delivery_id"),)


class CommunitySpike(Base):
    """A community's hostile share above its baseline: open (ended_at null) until it falls back."""

    __tablename__ = "community_spikes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    community_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    window_share: Mapped[float] = mapped_column(Float)
    baseline_share: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_community_spikes_community_ended", "community_id", "ended_at"),)


# --- writing events ---


def subscribers(session: Session, event_type: str) -> list[WebhookEndpoint]:
    rows = session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.disabled_at.is_(None), WebhookEndpoint.removed_at.is_(None))
    )
    return [e for e in rows if event_type in e.event_types]


def new_msg_id() -> str:
    return "msg_" + secrets.token_hex(16)


def enqueue_event(
    session: Session,
    event_type: str,
    data: dict[str, Any],
    *,
    subject: str | None = None,
    endpoints: Sequence[WebhookEndpoint] | None = None,
) -> WebhookEvent | None:
    """Write the event and a pending delivery per subscribed endpoint; None when nobody subscribes."""
    targets = list(endpoints) if endpoints is not None else subscribers(session, event_type)
    if not targets:
        return None
    now = utcnow()
    body = {"type": event_type, "timestamp": rfc3339(now), "data": data}
    event = WebhookEvent(
        msg_id=new_msg_id(),
        type=event_type,
        subject=subject,
        payload=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        created_at=now,
    )
    session.add(event)
    session.flush()
    for endpoint in targets:
        session.add(
            WebhookDelivery(
                event_id=event.id, endpoint_id=endpoint.id, status="pending", attempts=0, next_attempt_at=now
            )
        )
    session.flush()
    return event


def thread_subject(community_id: str, thread_id: str) -> str:
    return f"{community_id}/{thread_id}"


@dataclass(frozen=True)
class BumpedThread:
    """A thread's counters right after comments were added to it, and what was added."""

    community_id: str
    thread_id: str
    status: str
    comment_count: int
    hostile_count: int
    added: int
    added_hostile: int


def thread_bumped(session: Session, bumped: Sequence[BumpedThread]) -> None:
    """Emit `thread.flagged` for threads these comments pushed over a flag limit (once per thread)."""
    limits = session.info.get(FLAG_LIMITS_INFO)
    if not isinstance(limits, FlagLimits):
        return
    for b in bumped:
        before = Thread(comment_count=b.comment_count - b.added, hostile_count=b.hostile_count - b.added_hostile)
        after = Thread(comment_count=b.comment_count, hostile_count=b.hostile_count)
        reasons = flag_reasons(after, limits)
        if not reasons or flag_reasons(before, limits):
            continue
        subject = thread_subject(b.community_id, b.thread_id)
        already = session.scalar(
            select(WebhookEvent.id).where(WebhookEvent.type == "thread.flagged", WebhookEvent.subject == subject)
        )
        if already is not None:
            continue
        enqueue_event(
            session,
            "thread.flagged",
            {
                "community_id": b.community_id or None,
                "thread_id": b.thread_id,
                "status": b.status,
                "comment_count": b.comment_count,
                "hostile_count": b.hostile_count,
                "hostile_share": round(b.hostile_count / b.comment_count, 6) if b.comment_count else 0.0,
                "reasons": [{"kind": r.kind, "value": r.value, "limit": r.limit} for r in reasons],
            },
            subject=subject,
        )


def thread_resolved(session: Session, thread: Thread, *, actor: str, reason: str | None) -> None:
    """Emit `thread.resolved` (call in the transaction that resolves the thread)."""
    enqueue_event(
        session,
        "thread.resolved",
        {
            "community_id": thread.community_id or None,
            "thread_id": thread.thread_id,
            "status": thread.status,
            "resolved_by": actor,
            "reason": reason,
            "comment_count": thread.comment_count,
            "hostile_count": thread.hostile_count,
        },
        subject=thread_subject(thread.community_id, thread.thread_id),
    )


# --- endpoints ---


def add_endpoint(
    session: Session, *, url: str, events: Sequence[str], secret_ciphertext: str, description: str = ""
) -> WebhookEndpoint:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown:
        raise ValueError(f"unknown event type(s) {unknown}: choose from {list(EVENT_TYPES)}")
    if not events:
        raise ValueError(f"give at least one event type from {list(EVENT_TYPES)}")
    row = WebhookEndpoint(
        url=url,
        events=",".join(sorted(set(events))),
        description=description,
        secret_ciphertext=secret_ciphertext,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def list_endpoints(session: Session, include_removed: bool = False) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.id)
    if not include_removed:
        query = query.where(WebhookEndpoint.removed_at.is_(None))
    return list(session.scalars(query))


def remove_endpoint(session: Session, endpoint_id: int) -> bool:
    """Stop delivering to an endpoint (its log stays); False when there is no such endpoint."""
    row = session.get(WebhookEndpoint, endpoint_id)
    if row is None or row.removed_at is not None:
        return False
    row.removed_at = utcnow()
    return True


def disable_endpoint(session: Session, endpoint_id: int, reason: str) -> None:
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.disabled_at.is_(None))
        .values(disabled_at=utcnow(), disabled_reason=reason)
    )


def enable_endpoint(session: Session, endpoint_id: int) -> bool:
    row = session.get(WebhookEndpoint, endpoint_id)
    if row is None or row.removed_at is not None:
        return False
    row.disabled_at, row.disabled_reason = None, None
    return True


# --- the delivery worker's queries ---


def endpoints_with_due_deliveries(session: Session, now: datetime) -> list[int]:
    """Active endpoints whose oldest pending delivery is due and which nobody else is sending to."""
    rows = session.execute(
        select(WebhookDelivery.endpoint_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == "pending",
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.disabled_at.is_(None),
            WebhookEndpoint.removed_at.is_(None),
        )
        .distinct()
    ).all()
    return sorted(r[0] for r in rows)


def lease_endpoint(session: Session, endpoint_id: int, owner: str, *, until: datetime, now: datetime) -> bool:
    """Take (or renew) the right to send to this endpoint until `until`; False if another holds it."""
    result = session.execute(
        update(WebhookEndpoint)
        .where(
            WebhookEndpoint.id == endpoint_id,
            (WebhookEndpoint.lease_owner.is_(None))
            | (WebhookEndpoint.lease_owner == owner)
            | (WebhookEndpoint.lease_until < now),
        )
        .values(lease_owner=owner, lease_until=until)
    )
    return bool(getattr(result, "rowcount", 0))


def release_endpoint(session: Session, endpoint_id: int, owner: str) -> None:
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
    )


def next_delivery(session: Session, endpoint_id: int) -> tuple[WebhookDelivery, WebhookEvent] | None:
    """The endpoint's oldest pending delivery (events go out in the order they were created)."""
    row = session.execute(
        select(WebhookDelivery, WebhookEvent)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == "pending")
        .order_by(WebhookDelivery.event_id, WebhookDelivery.id)
        .limit(1)
    ).first()
    return (row[0], row[1]) if row else None


def record_attempt(
    session: Session,
    delivery: WebhookDelivery,
    *,
    at: datetime,
    status_code: int | None,
    error: str | None,
    duration_ms: float,
    outcome: str,
    retry_in: timedelta | None = None,
) -> None:
    """Log one attempt and move the delivery on: "delivered", "failed" (final) or "pending" (retry)."""
    session.add(
        WebhookAttempt(delivery_id=delivery.id, at=at, status_code=status_code, error=error, duration_ms=duration_ms)
    )
    delivery.attempts += 1
    delivery.last_attempt_at = at
    delivery.last_status = status_code
    delivery.last_error = error
    delivery.status = outcome
    if outcome == "delivered":
        delivery.delivered_at = at
    elif outcome == "pending" and retry_in is not None:
        delivery.next_attempt_at = at + retry_in


@dataclass(frozen=True)
class LogRow:
    delivery_id: int
    endpoint_id: int
    url: str
    event_type: str
    msg_id: str
    created_at: datetime
    status: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime
    delivered_at: datetime | None


def delivery_log(
    session: Session, *, endpoint_id: int | None = None, status: str | None = None, limit: int = 50
) -> list[LogRow]:
    """Newest deliveries first, with their event and endpoint."""
    query = (
        select(WebhookDelivery, WebhookEvent, WebhookEndpoint)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return [
        LogRow(
            d.id,
            p.id,
            p.url,
            e.type,
            e.msg_id,
            e.created_at,
            d.status,
            d.attempts,
            d.last_status,
            d.last_error,
            d.next_attempt_at,
            d.delivered_at,
        )
        for d, e, p in session.execute(query).all()
    ]


def attempts_of(session: Session, delivery_id: int) -> list[WebhookAttempt]:
    return list(
        session.scalars(
            select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.id)
        )
    )


def record_test_delivery(
    session: Session,
    endpoint: WebhookEndpoint,
    *,
    msg_id: str,
    payload: str,
    at: datetime,
    status_code: int | None,
    error: str | None,
    duration_ms: float,
) -> WebhookDelivery:
    """Log a `webhook.test` sent directly (not through the outbox): final at once, never retried."""
    event = WebhookEvent(msg_id=msg_id, type=TEST_EVENT, subject=None, payload=payload, created_at=at)
    session.add(event)
    session.flush()
    ok = status_code is not None and 200 <= status_code < 300
    delivery = WebhookDelivery(
        event_id=event.id,
        endpoint_id=endpoint.id,
        status="pending",
        attempts=0,
        next_attempt_at=at,
    )
    session.add(delivery)
    session.flush()
    record_attempt(
        session,
        delivery,
        at=at,
        status_code=status_code,
        error=error,
        duration_ms=duration_ms,
        outcome="delivered" if ok else "failed",
    )
    return delivery
