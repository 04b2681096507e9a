"""The delivery worker: a background thread sending due outbox deliveries, endpoint by endpoint.

Usage (the app's lifespan does this):
    worker = DeliveryWorker(runtime.sessions, WebhookSettings()); worker.start(); ...; worker.stop()

Per endpoint, deliveries go out strictly in the order their events were created: the oldest pending
one is sent, and while it waits for a retry the later ones wait too. A lease on the endpoint row
keeps one sender per endpoint across processes; a sender that dies (a killed server) loses it
after `lease_seconds`, and the next one re-sends what was not recorded as delivered, under the same
`webhook-id` (at-least-once: receivers deduplicate on it). The worker never holds a database
transaction during an HTTP call, and scoring never waits for it.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy.orm import Session, sessionmaker

from serving.storage.secrets import SecretBox, load_secret_box
from serving.storage.webhooks import (
    WebhookEndpoint,
    disable_endpoint,
    endpoints_with_due_deliveries,
    lease_endpoint,
    next_delivery,
    record_attempt,
    release_endpoint,
)
from serving.timefmt import utcnow
from serving.webhooks.settings import WebhookSettings
from serving.webhooks.signing import signed_headers
from serving.webhooks.spikes import SpikeWatcher
from serving.webhooks.urls import UnsafeURL, check_url

log = logging.getLogger(__name__)
USER_AGENT = "belonging-webhooks/1"
MAX_ERROR = 500


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    retry_after: float | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def backoff(attempt: int, settings: WebhookSettings, rng: random.Random) -> float:
    """Seconds before retry `attempt` (1-based): exponential, capped, with equal jitter."""
    delay = min(settings.retry_max_delay_seconds, settings.retry_base_seconds * 2 ** (attempt - 1))
    return delay * rng.uniform(0.5, 1.0)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def send(client: httpx.Client, url: str, secret: str, msg_id: str, body: bytes, *, allow_private: bool) -> Outcome:
    """One signed POST; never raises for network trouble (it is an outcome)."""
    started = time.perf_counter()
    try:
        check_url(url, allow_private=allow_private)
        headers = signed_headers(secret, msg_id, int(time.time()), body)
        headers["user-agent"] = USER_AGENT
        response = client.post(url, content=body, headers=headers)
    except UnsafeURL as exc:
        return Outcome(None, f"refused: {exc}", None, (time.perf_counter() - started) * 1000)
    except httpx.HTTPError as exc:
        return Outcome(None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR], None, (time.perf_counter() - started) * 1000)
    elapsed = (time.perf_counter() - started) * 1000
    error = None if 200 <= response.status_code < 300 else response.text[:MAX_ERROR] or response.reason_phrase
    return Outcome(response.status_code, error, _retry_after(response), elapsed)


class DeliveryWorker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: WebhookSettings | None = None,
        *,
        box_loader: Callable[[], SecretBox] = load_secret_box,
        rng: random.Random | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings or WebhookSettings()
        self._box_loader = box_loader
        self._box: SecretBox | None = None
        self.rng = rng or random.Random()
        self.owner = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.spikes = SpikeWatcher(self.settings)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_spike_check = 0.0

    # --- lifecycle ---

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="belong-webhooks", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._stopping.set()
            self._wake.set()
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    # --- the loop ---

    def _run(self) -> None:
        with httpx.Client(timeout=self.settings.timeout_seconds, follow_redirects=False) as client:
            while not self._stopping.is_set():
                try:
                    self.run_once(client)
                except Exception:
                    log.exception("webhook delivery round failed")
                self._wake.wait(self.settings.poll_seconds)
                self._wake.clear()

    def run_once(self, client: httpx.Client) -> int:
        """Check spikes when due, then send what is due to every endpoint; return deliveries sent."""
        if time.monotonic() >= self._next_spike_check:
            with self.sessions.begin() as session:
                self.spikes.check(session, utcnow())
            self._next_spike_check = time.monotonic() + self.settings.spike_check_seconds
        with self.sessions() as session:
            due = endpoints_with_due_deliveries(session, utcnow())
        return sum(self._serve_endpoint(client, endpoint_id) for endpoint_id in due if not self._stopping.is_set())

    def _lease(self, endpoint_id: int) -> bool:
        now = utcnow()
        with self.sessions.begin() as session:
            return lease_endpoint(
                session, endpoint_id, self.owner, until=now + timedelta(seconds=self.settings.lease_seconds), now=now
            )

    def _secret(self, endpoint: WebhookEndpoint) -> str:
        if self._box is None:
            self._box = self._box_loader()
        return self._box.decrypt(endpoint.secret_ciphertext)

    def _serve_endpoint(self, client: httpx.Client, endpoint_id: int) -> int:
        sent = 0
        try:
            while not self._stopping.is_set() and self._lease(endpoint_id):
                with self.sessions() as session:
                    endpoint = session.get(WebhookEndpoint, endpoint_id)
                    found = next_delivery(session, endpoint_id)
                    if endpoint is None or not endpoint.active or found is None:
                        break
                    delivery, event = found
                    if delivery.next_attempt_at > utcnow():
                        break  # the oldest waits for its retry: later events wait behind it
                    url, secret = endpoint.url, self._secret(endpoint)
                    delivery_id, msg_id, payload = delivery.id, event.msg_id, event.payload
                outcome = send(
                    client, url, secret, msg_id, payload.encode("utf-8"), allow_private=self.settings.allow_private
                )
                sent += 1
                if not self._record(endpoint_id, delivery_id, outcome):
                    break
        finally:
            with self.sessions.begin() as session:
                release_endpoint(session, endpoint_id, self.owner)
        return sent

    def _record(self, endpoint_id: int, delivery_id: int, outcome: Outcome) -> bool:
        """Store the attempt; True when the endpoint may take the next delivery right away."""
        from serving.storage.webhooks import WebhookDelivery

        now = utcnow()
        with self.sessions.begin() as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None or delivery.status != "pending":
                return True
            if outcome.ok:
                record_attempt(
                    session,
                    delivery,
                    at=now,
                    status_code=outcome.status_code,
                    error=None,
                    duration_ms=outcome.duration_ms,
                    outcome="delivered",
                )
                return True
            if outcome.status_code == 410:
                record_attempt(
                    session,
                    delivery,
                    at=now,
                    status_code=410,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                    outcome="failed",
                )
                disable_endpoint(session, endpoint_id, f"answered 410 Gone at {now:%Y-%m-%d %H:%M:%S} UTC")
                log.warning("webhook endpoint %d answered 410 Gone: disabled", endpoint_id)
                return False
            if delivery.attempts + 1 >= self.settings.max_attempts:
                record_attempt(
                    session,
                    delivery,
                    at=now,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=outcome.duration_ms,
                    outcome="failed",
                )
                log.warning("webhook delivery %d failed after %d attempts", delivery_id, delivery.attempts)
                return True  # given up: the next event may go
            wait = backoff(delivery.attempts + 1, self.settings, self.rng)
            if outcome.retry_after is not None:
                wait = max(wait, min(outcome.retry_after, self.settings.retry_max_delay_seconds))
            record_attempt(
                session,
                delivery,
                at=now,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
                outcome="pending",
                retry_in=timedelta(seconds=wait),
            )
            return False


def webhook_worker(
    sessions: sessionmaker[Session], flag_limits: object, settings: WebhookSettings | None = None
) -> DeliveryWorker:
    """The server's worker; also hands the flag limits to every session, so the writer's
    transaction writes `thread.flagged` events (serving.storage.webhooks.thread_bumped)."""
    from serving.storage.webhooks import FLAG_LIMITS_INFO

    info = dict(sessions.kw.get("info") or {})
    info[FLAG_LIMITS_INFO] = flag_limits
    sessions.configure(info=info)
    return DeliveryWorker(sessions, settings)
