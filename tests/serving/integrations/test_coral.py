"""Coral's external moderation phase: requests signed as Coral signs them, decisions, storage, CLI."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from belonging_cli.main import app as cli
from serving.integrations.coral import sign
from serving.settings import Settings
from serving.storage.db import make_engine, make_sessionmaker
from serving.storage.integrations import add_coral_secret
from serving.storage.models import Comment
from serving.storage.secrets import load_secret_box
from tests.serving.conftest import FakePredictor

runner = CliRunner()
OLD = "ems_" + "a1" * 16
NEW = "ems_" + "b2" * 16


def coral_body(text: str, *, role: str = "COMMENTER", parent: str | None = None) -> bytes:
    """What phases/external.ts sends, serialised as Coral serialises it: JSON.stringify(data, null, 2)."""
    data = {
        "action": "NEW",
        "comment": {"body": text, "parentID": parent},
        "author": {"id": "baf4e943-3594-4fcc-b2ba-3e8de7a76352", "role": role},
        "story": {"id": "245b3856-b0a0-4d2f-a6bb-58c71f18d6a6", "url": "http://localhost:1313/posts/a-story-url/"},
        "site": {"id": "a4bede88-2d2c-4424-bc18-4322a9e285a6"},
        "tenantID": "19ba5794-7eeb-4d46-a81b-c00c61672501",
        "tenantDomain": "localhost",
    }
    return json.dumps(data, indent=2, ensure_ascii=False).encode("utf-8")


def post(client, body: bytes, signature: str | None):
    headers = {"Content-Type": "application/json", "User-Agent": "Coral Moderation/9.11.8"}
    if signature is not None:
        headers["X-Coral-Signature"] = signature
    return client.post("/v1/integrations/coral", content=body, headers=headers)


def stored(db_url: str) -> list[Comment]:
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine)() as session:
            return list(session.scalars(select(Comment).order_by(Comment.id)))
    finally:
        engine.dispose()


def add(db_url: str, secret: str, **policy) -> int:
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            return add_coral_secret(session, load_secret_box(), name="news", secret=secret, **policy)[1].id
    finally:
        engine.dispose()


@pytest.fixture
def coral(make_client, db_url, tmp_path):
    # No secret cache: a revocation shows on the next request.
    settings = Settings(database_url=db_url, bundle=tmp_path / "none", key_cache_seconds=0)
    return make_client(settings, FakePredictor())


def test_a_hostile_comment_is_flagged_and_withheld_and_stored(coral, db_url):
    add(db_url, NEW, withhold=True)
    body = coral_body("<p>Go <b>back</b> where you came from</p>", parent="d79b787f")
    response = post(coral, body, sign(NEW, body))
    assert response.status_code == 200
    assert response.json() == {
        "actions": [{"actionType": "FLAG", "reason": "COMMENT_DETECTED_TOXIC"}],
        "status": "SYSTEM_WITHHELD",
    }
    [row] = stored(db_url)
    assert row.text == "Go back where you came from"  # HTML stripped
    assert (row.community_id, row.thread_id, row.parent_id, row.author_id) == (
        "coral:a4bede88-2d2c-4424-bc18-4322a9e285a6",
        "245b3856-b0a0-4d2f-a6bb-58c71f18d6a6",
        "d79b787f",
        "baf4e943-3594-4fcc-b2ba-3e8de7a76352",
    )
    assert row.hostile
    assert post(coral, body, sign(NEW, body)).status_code == 200  # resent: still one row
    assert len(stored(db_url)) == 1


def test_a_welcoming_comment_gets_no_decision(coral, db_url):
    add(db_url, NEW)
    body = coral_body("Welcome, glad you are here!")
    response = post(coral, body, sign(NEW, body))
    assert response.status_code == 204
    assert response.content == b""
    assert [r.welcoming for r in stored(db_url)] == [True]


def test_flag_without_withholding_and_staff_left_alone(coral, db_url):
    add(db_url, NEW)
    body = coral_body("go back")
    assert post(coral, body, sign(NEW, body)).json() == {
        "actions": [{"actionType": "FLAG", "reason": "COMMENT_DETECTED_TOXIC"}]
    }
    staff = coral_body("go back, idiot", role="MODERATOR")
    assert post(coral, staff, sign(NEW, staff)).status_code == 204


def test_unsigned_and_wrongly_signed_requests_change_nothing(coral, db_url):
    add(db_url, NEW)
    body = coral_body("go back")
    missing = post(coral, body, None)
    assert missing.status_code == 401
    assert missing.json()["detail"].startswith("missing X-Coral-Signature")
    assert post(coral, body, sign("ems_wrong", body)).status_code == 401
    assert post(coral, body, sign(NEW, body + b" ")).status_code == 401  # the raw bytes are signed
    assert post(coral, body, sign(NEW, body).replace("sha256=", "sha1=")).status_code == 401
    assert stored(db_url) == []


def test_rotation_accepts_either_secret_until_the_old_one_is_revoked(coral, db_url):
    old_id = add(db_url, OLD)
    body = coral_body("go back")
    # During rotation Coral signs with every active secret, comma-joined.
    both = f"{sign(OLD, body)},{sign(NEW, body)}"
    assert post(coral, body, both).status_code == 200  # we only know OLD yet
    add(db_url, NEW)
    assert post(coral, body, sign(NEW, body)).status_code == 200
    assert post(coral, body, sign(OLD, body)).status_code == 200
    result = runner.invoke(
        cli, ["integrations", "coral", "revoke", "news", "--secret", str(old_id), "--database-url", db_url]
    )
    assert result.exit_code == 0, result.output
    assert post(coral, body, sign(OLD, body)).status_code == 401
    assert post(coral, body, both).status_code == 200


def test_a_signed_body_that_is_not_corals_request_is_422(coral, db_url):
    add(db_url, NEW)
    body = json.dumps({"action": "NEW", "comment": {"body": "hi"}}).encode()
    response = post(coral, body, sign(NEW, body))
    assert response.status_code == 422
    assert "author" in response.json()["detail"]


def test_cli_adds_lists_and_revokes_with_secrets_encrypted_at_rest(db_url, secrets_key_file):
    args = ["--database-url", db_url]
    added = runner.invoke(
        cli, ["integrations", "coral", "add", "news", "--withhold", "--threshold", "0.7", *args], input=NEW + "\n"
    )
    assert added.exit_code == 0, added.output
    again = runner.invoke(cli, ["integrations", "coral", "add", "news", *args], input=NEW + "\n")
    assert again.exit_code == 2
    assert "already active" in again.output
    listed = runner.invoke(cli, ["integrations", "coral", "list", *args])
    assert "news" in listed.output and "0.7" in listed.output and NEW not in listed.output
    engine = make_engine(db_url)
    with engine.connect() as connection:
        raw = connection.exec_driver_sql("SELECT ciphertext FROM coral_secrets").scalar_one()
    engine.dispose()
    assert NEW not in raw and load_secret_box().decrypt(raw) == NEW
    assert secrets_key_file.stat().st_mode & 0o777 == 0o600
    revoked = runner.invoke(cli, ["integrations", "coral", "revoke", "news", *args])
    assert revoked.exit_code == 0
    assert runner.invoke(cli, ["integrations", "coral", "revoke", "nope", *args]).exit_code == 1
