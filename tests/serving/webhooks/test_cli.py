"""`belong webhooks`: add (secret printed once, stored encrypted), list, test, log, remove."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from belonging_cli.main import app as cli
from tests.serving.webhooks.receiver import receiving

runner = CliRunner()


def test_add_test_log_and_remove(db_url, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich tables unwrapped
    args = ["--database-url", db_url]
    refused = runner.invoke(cli, ["webhooks", "add", "http://127.0.0.1:9/x", "--events", "thread.flagged", *args])
    assert refused.exit_code == 2
    assert "loopback" in refused.output
    unknown = runner.invoke(cli, ["webhooks", "add", "https://8.8.8.8/x", "--events", "thread.exploded", *args])
    assert unknown.exit_code == 2 and "unknown event type" in unknown.output

    monkeypatch.setenv("BELONG_WEBHOOK_ALLOW_PRIVATE", "true")
    added = runner.invoke(
        cli, ["webhooks", "add", "http://127.0.0.1:9/x", "--events", "thread.flagged,thread.resolved", *args]
    )
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    listed = runner.invoke(cli, ["webhooks", "list", *args])
    assert "thread.flagged,thread.resolved" in listed.output and secret not in listed.output

    with receiving(secret) as receiver:
        from serving.storage.db import make_engine, make_sessionmaker
        from serving.storage.webhooks import WebhookEndpoint

        engine = make_engine(db_url)
        with make_sessionmaker(engine).begin() as session:
            endpoint = session.get(WebhookEndpoint, 1)
            assert secret not in endpoint.secret_ciphertext
            endpoint.url = receiver.url
        engine.dispose()
        tested = runner.invoke(cli, ["webhooks", "test", "1", *args])
        assert tested.exit_code == 0, tested.output
        assert "HTTP 204" in tested.output
        assert [r.type for r in receiver.received] == ["webhook.test"]
    failed = runner.invoke(cli, ["webhooks", "test", "1", *args])  # the receiver is gone
    assert failed.exit_code == 1 and "no answer" in failed.output

    log = runner.invoke(cli, ["webhooks", "log", "--json", *args])
    rows = [json.loads(line) for line in log.stdout.splitlines()]
    assert [(r["event_type"], r["status"]) for r in rows] == [("webhook.test", "failed"), ("webhook.test", "delivered")]
    assert rows[1]["attempt_log"][0]["status_code"] == 204
    assert runner.invoke(cli, ["webhooks", "log", "--status", "nope", *args]).exit_code == 2

    assert runner.invoke(cli, ["webhooks", "remove", "1", *args]).exit_code == 0
    assert runner.invoke(cli, ["webhooks", "remove", "1", *args]).exit_code == 1
    assert "removed" in runner.invoke(cli, ["webhooks", "list", "--all", *args]).output
