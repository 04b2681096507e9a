"""Kill the server (SIGKILL) in the middle of a delivery, start it again, and check that every
event reaches a receiver that verifies signatures with `standardwebhooks`: at least once, and
in the order the events were created."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import httpx
from sqlalchemy import select

from serving.moderation.audit import Actor
from serving.moderation.review import set_thread_status
from serving.storage.models import Thread
from serving.storage.webhooks import WebhookDelivery, WebhookEvent
from tests.conftest import ROOT
from tests.serving.conftest import bearer
from tests.serving.webhooks.receiver import receiving


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(db_url: str, port: int, env: dict[str, str]) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.serving.webhooks.run_server", db_url, str(port)], cwd=ROOT, env=env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not become ready")


def pending(sessions, endpoint_id: int) -> int:
    with sessions() as session:
        statuses = list(
            session.scalars(select(WebhookDelivery.status).where(WebhookDelivery.endpoint_id == endpoint_id))
        )
    assert set(statuses) <= {"pending", "delivered"}
    return statuses.count("pending")


def flag_thread(base: str, key: str, thread: str) -> None:
    comments = [{"id": f"{thread}-{i}", "text": "go back", "community_id": "c", "thread_id": thread} for i in range(2)]
    response = httpx.post(f"{base}/v1/score", json={"comments": comments}, headers=bearer(key))
    assert response.status_code == 200, response.text


def test_every_event_arrives_in_order_across_a_killed_server(db_url, keys, make_endpoint, sessions, secrets_key_file):
    release = threading.Event()
    killed_during = {}

    def answer(n, received):
        if n == 3:  # hold the third delivery open: the server is killed while it waits
            killed_during["msg_id"] = received.msg_id
            release.wait(20)
        return 204

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BELONG_SECRETS_KEY_FILE": str(secrets_key_file),
        "BELONG_WEBHOOK_ALLOW_PRIVATE": "true",
        "BELONG_WEBHOOK_POLL_SECONDS": "0.1",
        "BELONG_WEBHOOK_LEASE_SECONDS": "2",
        "BELONG_WEBHOOK_RETRY_BASE_SECONDS": "0.2",
        "BELONG_WEBHOOK_TIMEOUT_SECONDS": "30",
    }
    port = free_port()
    endpoint_id, secret = make_endpoint("http://127.0.0.1:9/unused", ["thread.flagged", "thread.resolved"])
    with receiving(secret, answer=answer) as receiver:
        with sessions.begin() as session:
            from serving.storage.webhooks import WebhookEndpoint

            session.get(WebhookEndpoint, endpoint_id).url = receiver.url  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        server = start_server(db_url, port, env)
        try:
            for i in range(5):
                flag_thread(base, keys.score, f"t{i}")
            assert receiver.wait_for(lambda r: len(r) >= 3, 20), receiver.ids()
            server.kill()  # SIGKILL mid-delivery: the third delivery is never recorded
            server.wait(10)
            release.set()
            # While the server is down, moderators resolve threads: the events wait in the outbox.
            with sessions.begin() as session:
                for pk in session.scalars(select(Thread.id).order_by(Thread.id).limit(2)):
                    set_thread_status(
                        session, thread_pk=pk, action="resolve", reason="handled", actor=Actor(None, "cli:x")
                    )
            server = start_server(db_url, port, env)
            flag_thread(base, keys.score, "t9")
            with sessions() as session:
                expected = list(
                    session.scalars(
                        select(WebhookEvent.msg_id)
                        .join(WebhookDelivery, WebhookDelivery.event_id == WebhookEvent.id)
                        .where(WebhookDelivery.endpoint_id == endpoint_id)
                        .order_by(WebhookEvent.id)
                    )
                )
            assert len(expected) == 5 + 2 + 1
            assert receiver.wait_for(lambda r: {x.msg_id for x in r} >= set(expected), 30), (receiver.ids(), expected)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and pending(sessions, endpoint_id):
                time.sleep(0.1)
            assert not pending(sessions, endpoint_id)
        finally:
            release.set()
            server.kill()
            server.wait(10)
    seen = receiver.ids()
    first_seen = list(dict.fromkeys(seen))
    assert first_seen == expected  # in order of creation
    assert seen.count(killed_during["msg_id"]) >= 2  # re-sent after the restart, same webhook-id
    assert receiver.rejected == []
