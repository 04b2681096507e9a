"""Events land in the outbox in the transaction of the change; the worker delivers them in order,
retries with backoff, and stops at 410; hostility spikes against the community's own baseline."""

from __future__ import annotations

import json
import random
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from serving.moderation.audit import Actor
from serving.moderation.review import set_thread_status
from serving.storage.comments import NewComment, insert_scored
from serving.storage.models import Thread
from serving.storage.threads import FlagLimits
from serving.storage.webhooks import (
    FLAG_LIMITS_INFO,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    enqueue_event,
)
from serving.timefmt import utcnow
from serving.webhooks.delivery import DeliveryWorker, backoff
from serving.webhooks.settings import WebhookSettings
from serving.webhooks.spikes import check_community
from tests.serving.conftest import bearer
from tests.serving.webhooks.receiver import receiving

FAST = WebhookSettings(allow_private=True, retry_base_seconds=0.05, retry_max_delay_seconds=0.2, max_attempts=4)


def events(sessions, event_type: str | None = None) -> list[WebhookEvent]:
    with sessions() as session:
        query = select(WebhookEvent).order_by(WebhookEvent.id)
        if event_type:
            query = query.where(WebhookEvent.type == event_type)
        return list(session.scalars(query))


def comment(i: int, *, thread: str = "t1", hostile: bool, community: str = "c", at=None) -> NewComment:
    return NewComment(
        community_id=community,
        comment_id=f"{thread}-{i}",
        thread_id=thread,
        author_id=f"u{i}",
        parent_id=None,
        text="go back" if hostile else "welcome",
        lang="en",
        created_at=at or utcnow(),
        scores={"welcoming": 0.1, "curious": 0.1, "hostile": 0.9 if hostile else 0.1},
        tags=["hostile"] if hostile else [],
        truncated=False,
    )


def test_a_thread_becoming_flagged_writes_one_event_with_the_comments(client, keys, make_endpoint, sessions):
    make_endpoint("https://8.8.8.8/hooks", ["thread.flagged"])
    make_endpoint("https://8.8.4.4/hooks", ["thread.resolved"])  # not subscribed to this event

    def post(i: int, text: str) -> None:
        body = {"comments": [{"id": f"m{i}", "text": text, "community_id": "c", "thread_id": "t1"}]}
        assert client.post("/v1/score", json=body, headers=bearer(keys.score)).status_code == 200

    for i, text in enumerate(["welcome!", "welcome?", "go back"]):
        post(i, text)
    assert events(sessions) == []  # 1 hostile of 3: under both limits
    post(3, "go back")  # 2 of 4: the share limit (0.5) is reached
    [event] = events(sessions)
    body = json.loads(event.payload)
    assert body["type"] == "thread.flagged"
    assert body["data"]["thread_id"] == "t1" and body["data"]["hostile_count"] == 2
    assert body["data"]["reasons"] == [{"kind": "hostile_share", "value": 0.5, "limit": 0.5}]
    post(4, "go back")
    post(5, "welcome")
    post(6, "go back")  # 4 of 7: flagged all along, and by count now: still one event
    assert len(events(sessions)) == 1
    with sessions() as session:
        deliveries = list(session.scalars(select(WebhookDelivery)))
    assert [d.endpoint_id for d in deliveries] == [1]


def test_thread_resolved_commits_or_rolls_back_with_the_resolution(sessions, make_endpoint):
    make_endpoint("https://8.8.8.8/hooks", ["thread.resolved"])
    with sessions.begin() as session:
        session.info[FLAG_LIMITS_INFO] = FlagLimits(3, 0.5, 2)
        insert_scored(session, [comment(i, hostile=True) for i in range(3)], model_name="m", model_version="1")
    with sessions() as session:
        thread_pk = session.scalars(select(Thread.id)).one()
    actor = Actor(id=None, name="cli:alice")
    with pytest.raises(RuntimeError), sessions.begin() as session:
        assert set_thread_status(session, thread_pk=thread_pk, action="resolve", reason="removed", actor=actor)
        raise RuntimeError("the page failed after the change")
    assert events(sessions, "thread.resolved") == []
    with sessions.begin() as session:
        set_thread_status(session, thread_pk=thread_pk, action="resolve", reason="removed", actor=actor)
    [event] = events(sessions, "thread.resolved")
    data = json.loads(event.payload)["data"]
    assert (data["thread_id"], data["status"], data["resolved_by"], data["reason"]) == (
        "t1",
        "resolved",
        "cli:alice",
        "removed",
    )
    assert events(sessions, "thread.flagged") == []  # nobody subscribes to it


def test_backoff_grows_exponentially_with_jitter_up_to_the_cap():
    settings = WebhookSettings(retry_base_seconds=5, retry_max_delay_seconds=60)
    rng = random.Random(1)
    waits = [backoff(n, settings, rng) for n in range(1, 7)]
    for n, wait in enumerate(waits, start=1):
        full = min(60, 5 * 2 ** (n - 1))
        assert full / 2 <= wait <= full
    assert len({round(w, 6) for w in waits}) == len(waits)


def enqueue(sessions, n: int, endpoint_id: int) -> list[str]:
    with sessions.begin() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        return [
            enqueue_event(session, "thread.resolved", {"n": i}, endpoints=[endpoint]).msg_id  # type: ignore[union-attr]
            for i in range(n)
        ]


def run_until_idle(worker: DeliveryWorker, rounds: int = 60) -> None:
    import time

    with httpx.Client(timeout=5) as client:
        for _ in range(rounds):
            worker.run_once(client)
            with worker.sessions() as session:
                if session.scalar(select(WebhookDelivery.id).where(WebhookDelivery.status == "pending")) is None:
                    return
            time.sleep(0.05)


def test_failures_are_retried_in_order_per_endpoint(sessions, make_endpoint):
    answers = {2: 500, 3: 503}  # the second event fails twice before it is taken

    endpoint_id, secret = make_endpoint("http://127.0.0.1:9/unused", ["thread.resolved"])
    with receiving(secret, answer=lambda n, r: answers.get(n, 204)) as receiver:
        with sessions.begin() as session:
            session.get(WebhookEndpoint, endpoint_id).url = receiver.url  # type: ignore[union-attr]
        ids = enqueue(sessions, 4, endpoint_id)
        run_until_idle(DeliveryWorker(sessions, FAST))
        assert receiver.rejected == []
        assert receiver.ids() == [ids[0], ids[1], ids[1], ids[1], ids[2], ids[3]]
    with sessions() as session:
        second = session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()[1]
        attempts = session.scalars(select(WebhookAttempt).where(WebhookAttempt.delivery_id == second.id)).all()
    assert (second.status, second.attempts) == ("delivered", 3)
    assert [a.status_code for a in attempts] == [500, 503, 204]
    assert attempts[1].at - attempts[0].at >= timedelta(seconds=0.025)  # waited (base 0.05 s, jitter >= half)


def test_410_disables_the_endpoint_and_keeps_the_rest_pending(sessions, make_endpoint):
    endpoint_id, secret = make_endpoint("http://127.0.0.1:9/unused", ["thread.resolved"])
    with receiving(secret, answer=lambda n, r: 410 if n == 2 else 200) as receiver:
        with sessions.begin() as session:
            session.get(WebhookEndpoint, endpoint_id).url = receiver.url  # type: ignore[union-attr]
        ids = enqueue(sessions, 3, endpoint_id)
        worker = DeliveryWorker(sessions, FAST)
        run_until_idle(worker, rounds=5)
        assert receiver.ids() == ids[:2]
        with sessions() as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            statuses = [d.status for d in session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id))]
        assert endpoint.disabled_at is not None and "410" in endpoint.disabled_reason
        assert statuses == ["delivered", "failed", "pending"]


def test_gives_up_after_max_attempts_and_moves_on(sessions, make_endpoint):
    endpoint_id, secret = make_endpoint("http://127.0.0.1:9/unused", ["thread.resolved"])
    with receiving(secret, answer=lambda n, r: 500 if r.data["n"] == 0 else 204) as receiver:
        with sessions.begin() as session:
            session.get(WebhookEndpoint, endpoint_id).url = receiver.url  # type: ignore[union-attr]
        ids = enqueue(sessions, 2, endpoint_id)
        run_until_idle(DeliveryWorker(sessions, FAST))
        assert receiver.ids() == [ids[0]] * FAST.max_attempts + [ids[1]]


def test_a_private_target_is_refused_at_delivery_unless_allowed(sessions, make_endpoint):
    endpoint_id, _ = make_endpoint("http://127.0.0.1:9/hooks", ["thread.resolved"])
    enqueue(sessions, 1, endpoint_id)
    strict = WebhookSettings(allow_private=False, retry_base_seconds=60)
    with httpx.Client() as client:
        DeliveryWorker(sessions, strict).run_once(client)
    with sessions() as session:
        delivery = session.scalars(select(WebhookDelivery)).one()
    assert delivery.status == "pending" and delivery.last_status is None
    assert "loopback" in delivery.last_error


def test_a_hostility_spike_against_the_communitys_baseline(sessions, make_endpoint):
    make_endpoint("https://8.8.8.8/hooks", ["community.hostility_spike"])
    settings = WebhookSettings(spike_min_comments=10, spike_min_baseline_comments=50, spike_margin=0.2)
    now = utcnow()
    baseline = [comment(i, thread="b", hostile=i % 10 == 0, at=now - timedelta(days=2, minutes=i)) for i in range(100)]
    window = [comment(i, thread="w", hostile=i % 5 < 2, at=now - timedelta(minutes=1 + i)) for i in range(20)]
    with sessions.begin() as session:
        insert_scored(session, baseline + window[:10], model_name="m", model_version="1")
    with sessions.begin() as session:  # 4 of 10 hostile = 0.4 >= 0.1 + 0.2
        assert check_community(session, settings, "c", now)
    with sessions.begin() as session:  # still high: one spike, one event
        assert not check_community(session, settings, "c", now)
    [event] = events(sessions, "community.hostility_spike")
    data = json.loads(event.payload)["data"]
    assert data["window"]["comments"] == 10 and data["window"]["hostile_share"] == 0.4
    assert data["baseline"]["comments"] == 100 and data["baseline"]["hostile_share"] == 0.1
    later = now + timedelta(hours=2)  # the window is empty again: share 0 ends the spike
    with sessions.begin() as session:
        assert not check_community(session, settings, "c", later)
    calm = WebhookSettings(spike_min_comments=10, spike_min_baseline_comments=50, spike_margin=0.5)
    with sessions.begin() as session:
        assert not check_community(session, calm, "c", now)  # 0.4 < 0.1 + 0.5
