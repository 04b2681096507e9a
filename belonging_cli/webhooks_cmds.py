"""`belong webhooks`: endpoints that receive signed events, and their delivery log.

Usage:
    belong webhooks add URL --events thread.flagged,community.hostility_spike [--description TEXT]
        # prints the endpoint's whsec_ secret once (or give your own with --secret-stdin)
    belong webhooks list | remove ID | enable ID | test ID | log [--endpoint ID] [--status failed]

Events: thread.flagged, community.hostility_spike, thread.resolved (docs/webhooks.md). Deliveries
are signed per Standard Webhooks and sent by the running server from its outbox.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from belonging_cli.common import DatabaseUrl, err, fail, load_settings, store

if TYPE_CHECKING:
    from serving.storage.secrets import SecretBox

app = typer.Typer(help="Signed webhooks: endpoints, tests and the delivery log.", no_args_is_help=True)


def _box() -> SecretBox:
    from serving.storage.secrets import SecretsKeyError, load_secret_box

    try:
        return load_secret_box()
    except SecretsKeyError as exc:
        raise fail(str(exc), 1) from exc


def _when(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else ""


@app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="http(s) URL that receives POSTed events.")],
    events: Annotated[str, typer.Option("--events", help="Comma-separated event types.")],
    description: Annotated[str, typer.Option("--description", help="A note for admins.")] = "",
    secret_stdin: Annotated[
        bool, typer.Option("--secret-stdin", help="Read a whsec_ secret from stdin instead of generating one.")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Add an endpoint; prints its signing secret (whsec_...) once on stdout."""
    from serving.storage.webhooks import add_endpoint
    from serving.webhooks.settings import WebhookSettings
    from serving.webhooks.signing import generate_secret, secret_key
    from serving.webhooks.urls import UnsafeURL, check_url

    try:
        check_url(url, allow_private=WebhookSettings().allow_private)
    except UnsafeURL as exc:
        raise fail(str(exc)) from exc
    secret = sys.stdin.readline().strip() if secret_stdin else generate_secret()
    try:
        secret_key(secret)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    box = _box()
    try:
        with store(load_settings(database_url=database_url)) as sessions, sessions.begin() as session:
            row = add_endpoint(
                session,
                url=url,
                events=[e.strip() for e in events.split(",") if e.strip()],
                secret_ciphertext=box.encrypt(secret),
                description=description,
            )
            endpoint_id, chosen = row.id, row.events
    except ValueError as exc:
        raise fail(str(exc)) from exc
    err.print(f"endpoint {endpoint_id} receives {chosen}; its signing secret (store it now, shown once):")
    if not secret_stdin:
        sys.stdout.write(secret + "\n")


@app.command("list")
def webhooks_list(
    all_: Annotated[bool, typer.Option("--all", help="Include removed endpoints.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Endpoints with their state and pending deliveries (never their secrets)."""
    from sqlalchemy import func, select

    from serving.storage.webhooks import WebhookDelivery, list_endpoints

    table = Table("id", "url", "events", "state", "pending", "description", "created")
    with store(load_settings(database_url=database_url)) as sessions, sessions() as session:
        pending = dict(
            session.execute(
                select(WebhookDelivery.endpoint_id, func.count())
                .where(WebhookDelivery.status == "pending")
                .group_by(WebhookDelivery.endpoint_id)
            ).all()
        )
        for e in list_endpoints(session, include_removed=all_):
            state = (
                f"removed {_when(e.removed_at)}"
                if e.removed_at
                else f"disabled: {e.disabled_reason}"
                if e.disabled_at
                else "active"
            )
            table.add_row(
                str(e.id),
                escape(e.url),
                e.events,
                escape(state),
                str(pending.get(e.id, 0)),
                escape(e.description),
                _when(e.created_at),
            )
    Console().print(table)


@app.command("remove")
def webhooks_remove(endpoint_id: Annotated[int, typer.Argument()], database_url: DatabaseUrl = None) -> None:
    """Stop delivering to an endpoint; its delivery log stays."""
    from serving.storage.webhooks import remove_endpoint

    with store(load_settings(database_url=database_url)) as sessions, sessions.begin() as session:
        done = remove_endpoint(session, endpoint_id)
    if not done:
        raise fail(f"no webhook endpoint with id {endpoint_id}", 1)
    err.print(f"removed endpoint {endpoint_id}")


@app.command("enable")
def webhooks_enable(endpoint_id: Annotated[int, typer.Argument()], database_url: DatabaseUrl = None) -> None:
    """Re-enable an endpoint disabled by a 410 answer; its pending deliveries resume in order."""
    from serving.storage.webhooks import enable_endpoint

    with store(load_settings(database_url=database_url)) as sessions, sessions.begin() as session:
        done = enable_endpoint(session, endpoint_id)
    if not done:
        raise fail(f"no webhook endpoint with id {endpoint_id}", 1)
    err.print(f"enabled endpoint {endpoint_id}")


@app.command("test")
def webhooks_test(endpoint_id: Annotated[int, typer.Argument()], database_url: DatabaseUrl = None) -> None:
    """Send a signed `webhook.test` event now and print the answer (logged, never retried)."""
    import httpx

    from serving.storage.webhooks import TEST_EVENT, WebhookEndpoint, new_msg_id, record_test_delivery, rfc3339
    from serving.timefmt import utcnow
    from serving.webhooks.delivery import send
    from serving.webhooks.settings import WebhookSettings

    webhook_settings = WebhookSettings()
    box = _box()
    with store(load_settings(database_url=database_url)) as sessions:
        with sessions() as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            if endpoint is None or endpoint.removed_at is not None:
                raise fail(f"no webhook endpoint with id {endpoint_id}", 1)
            url, secret = endpoint.url, box.decrypt(endpoint.secret_ciphertext)
        now = utcnow()
        msg_id = new_msg_id()
        payload = json.dumps(
            {"type": TEST_EVENT, "timestamp": rfc3339(now), "data": {"endpoint_id": endpoint_id}},
            separators=(",", ":"),
        )
        with httpx.Client(timeout=webhook_settings.timeout_seconds, follow_redirects=False) as client:
            outcome = send(client, url, secret, msg_id, payload.encode(), allow_private=webhook_settings.allow_private)
        with sessions.begin() as session:
            endpoint = session.get(WebhookEndpoint, endpoint_id)
            assert endpoint is not None
            record_test_delivery(
                session,
                endpoint,
                msg_id=msg_id,
                payload=payload,
                at=now,
                status_code=outcome.status_code,
                error=outcome.error,
                duration_ms=outcome.duration_ms,
            )
    answer = f"HTTP {outcome.status_code}" if outcome.status_code is not None else "no answer"
    detail = f": {outcome.error}" if outcome.error else ""
    message = f"{msg_id} -> {url}: {answer} in {outcome.duration_ms:.0f} ms{detail}"
    if not outcome.ok:
        raise fail(message, 1)
    err.print(message)


@app.command("log")
def webhooks_log(
    endpoint: Annotated[int | None, typer.Option("--endpoint", help="Only this endpoint.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="pending, delivered or failed.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON Lines, with every attempt.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """The delivery log, newest first: event, endpoint, status, attempts, last answer."""
    from serving.storage.webhooks import DELIVERY_STATUSES, attempts_of, delivery_log

    if status is not None and status not in DELIVERY_STATUSES:
        raise typer.BadParameter(f"choose from {list(DELIVERY_STATUSES)}", param_hint="--status")
    table = Table(
        "delivery", "event", "webhook-id", "endpoint", "created", "status", "attempts", "last answer", "next try"
    )
    with store(load_settings(database_url=database_url)) as sessions, sessions() as session:
        for row in delivery_log(session, endpoint_id=endpoint, status=status, limit=limit):
            if as_json:
                attempts = [
                    {"at": _when(a.at), "status_code": a.status_code, "error": a.error, "ms": round(a.duration_ms, 1)}
                    for a in attempts_of(session, row.delivery_id)
                ]
                record = {**row.__dict__, "attempt_log": attempts}
                sys.stdout.write(json.dumps(record, default=str) + "\n")
                continue
            answer = str(row.last_status) if row.last_status is not None else (row.last_error or "")[:60]
            table.add_row(
                str(row.delivery_id),
                row.event_type,
                row.msg_id,
                f"{row.endpoint_id} {escape(row.url)}",
                _when(row.created_at),
                row.status,
                str(row.attempts),
                escape(answer),
                _when(row.next_attempt_at) if row.status == "pending" else "",
            )
    if not as_json:
        Console().print(table)
