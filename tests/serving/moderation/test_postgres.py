"""The moderation flow on PostgreSQL (run with BELONG_TEST_POSTGRES_URL; `.ci/run` sets it).

The database is shared with the serving tests for the whole session, so names here are unique
per run instead of truncating (the audit log refuses TRUNCATE, by design).
"""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select, text

from serving.moderation import accounts
from serving.moderation.audit import Actor
from serving.moderation.feedback import feedback_rows
from serving.settings import Settings
from serving.storage.db import make_engine, make_sessionmaker
from serving.storage.keys import create_key
from serving.storage.moderation import AuditEntry
from tests.serving.moderation.conftest import PASSWORD, FakePredictor, bearer, csrf_of, login

pytestmark = pytest.mark.postgres


def test_review_flow_on_postgres(postgres_url, make_client, tmp_path):
    run = uuid.uuid4().hex[:8]
    community, name = f"pg-{run}", f"pg{run}"
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as db:
        key = create_key(db, name=f"pg-{run}", scopes=["score"]).token
        accounts.create_user(db, name, PASSWORD, "moderator", actor=Actor.cli())
    client = make_client(
        Settings(database_url=postgres_url, bundle=tmp_path / "none", max_wait_ms=2),
        FakePredictor(),
        follow_redirects=False,
    )
    comments = [
        {
            "id": f"{i}",
            "thread_id": "t",
            "community_id": community,
            "lang": "en",
            "text": text,
            "created_at": f"2025-02-01T10:0{i}:00Z",
            **({"parent_id": "0"} if i else {}),
        }
        for i, text in enumerate(["hello all", "go back", "idiot", "go back home", "welcome!"])
    ]
    assert client.post("/v1/score", json={"comments": comments}, headers=bearer(key)).status_code == 200
    login(client, name, PASSWORD)
    queue = client.get("/moderation/", params={"community": community, "lang": "en"})
    assert queue.status_code == 200 and ">t</bdi>" in queue.text
    thread_href = queue.text.split('<a href="/moderation/threads/')[1].split('"')[0]
    page = client.get(f"/moderation/threads/{thread_href}")
    comment_pk = page.text.split('action="/moderation/comments/')[2].split("/")[0]  # 2nd comment: "go back"
    token = csrf_of(page.text)
    rejected = client.post(
        f"/moderation/comments/{comment_pk}/review", data={"action": "reject:hostile", "csrf_token": token}
    )
    assert rejected.status_code == 303
    resolved = client.post(
        f"/moderation/threads/{thread_href}/status",
        data={"action": "resolve", "reason": "handled", "csrf_token": token},
    )
    assert resolved.status_code == 303
    assert client.get("/moderation/community", params={"id": community}).status_code == 200
    with sessions() as db:
        entries = db.scalars(
            select(AuditEntry).where(AuditEntry.community_id == community).order_by(AuditEntry.id)
        ).all()
        assert [e.action for e in entries] == ["tag.reject", "thread.resolve"]
        assert json.loads(entries[0].after)["hostile"] == 0
        rows = [r for r in feedback_rows(db) if r["community_id"] == community]
        assert [(r["id"], r["hostile"], r["moderator"]) for r in rows] == [(f"mod-pg%2D{run}-1", 0, name)]
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with sessions.begin() as db, pytest.raises(Exception, match="append-only"):
            db.execute(text(statement))
    engine.dispose()
