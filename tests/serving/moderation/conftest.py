"""Moderation fixtures: the serving app with the fake predictor, seeded threads, accounts, logins.

The serving fixtures (fresh migrated SQLite per test, fake predictor, API keys) are reused from
tests/serving/conftest.py. Passwords are hashed with cheap argon2 parameters here to keep the suite
fast; test_accounts checks the production parameters on their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from serving.moderation import accounts
from serving.moderation.audit import Actor
from serving.settings import Settings
from serving.storage.db import make_engine, make_sessionmaker
from tests.serving.conftest import (  # noqa: F401  (fixtures, re-exported for this folder)
    FakePredictor,
    bearer,
    db_url,
    keys,
    make_client,
    postgres_url,
    predictor,
    settings,
    template_db,
    wait_ready,
)

PASSWORD = "correct horse battery staple"
ADMIN_PASSWORD = "admin passphrase for tests"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_LINK = "javascript:alert(1)"
RLO = "\u202e"


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(accounts, "hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    accounts._dummy_hash.cache_clear()


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:  # noqa: F811
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@dataclass
class Accounts:
    moderator: str = "mia"
    admin: str = "ada"
    moderator_id: int = 0
    admin_id: int = 0


@pytest.fixture
def users(sessions: sessionmaker[Session]) -> Accounts:
    made = Accounts()
    with sessions.begin() as db:
        made.moderator_id = accounts.create_user(db, made.moderator, PASSWORD, "moderator", actor=Actor.cli()).id
        made.admin_id = accounts.create_user(db, made.admin, ADMIN_PASSWORD, "admin", actor=Actor.cli()).id
    return made


def thread_comments() -> list[dict]:
    """A flagged thread t1 in community c1 (3 hostile of 5, in English, with replies), a calm thread
    t2, and a thread t3 in community c2 (Spanish) with hostile comments carrying attack payloads."""
    return [
        {
            "id": "1",
            "thread_id": "t1",
            "community_id": "c1",
            "author_id": "newbie",
            "lang": "en",
            "text": "Hi everyone, I just moved over here!",
            "created_at": "2025-02-01T10:00:00Z",
        },
        {
            "id": "2",
            "thread_id": "t1",
            "community_id": "c1",
            "author_id": "troll",
            "parent_id": "1",
            "lang": "en",
            "text": "go back to tiktok, nobody asked",
            "created_at": "2025-02-01T10:05:00Z",
        },
        {
            "id": "3",
            "thread_id": "t1",
            "community_id": "c1",
            "author_id": "kind",
            "parent_id": "1",
            "lang": "en",
            "text": "Welcome! Where are you from?",
            "created_at": "2025-02-01T10:06:00Z",
        },
        {
            "id": "4",
            "thread_id": "t1",
            "community_id": "c1",
            "author_id": "troll2",
            "parent_id": "2",
            "lang": "en",
            "text": "what an idiot lol",
            "created_at": "2025-02-01T10:07:00Z",
        },
        {
            "id": "5",
            "thread_id": "t1",
            "community_id": "c1",
            "author_id": "troll",
            "lang": "en",
            "text": "seriously go back home",
            "created_at": "2025-02-01T11:00:00Z",
        },
        {
            "id": "6",
            "thread_id": "t2",
            "community_id": "c1",
            "author_id": "kind",
            "lang": "en",
            "text": "welcome to the group",
            "created_at": "2025-02-02T09:00:00Z",
        },
        {
            "id": "x1",
            "thread_id": "t3",
            "community_id": "c2",
            "author_id": f"{XSS_IMG}{RLO}evil",
            "lang": "es",
            "text": f"go back {XSS_SCRIPT} {XSS_IMG} {XSS_LINK} {RLO}txt.exe",
            "created_at": "2025-02-03T08:00:00Z",
        },
        {
            "id": "x2",
            "thread_id": "t3",
            "community_id": "c2",
            "author_id": "anon",
            "parent_id": "x1",
            "lang": "es",
            "text": "you idiot",
            "created_at": "2025-02-03T08:01:00Z",
        },
    ]


def seed(client: TestClient, key: str, comments: list[dict] | None = None) -> None:
    response = client.post("/v1/score", json={"comments": comments or thread_comments()}, headers=bearer(key))
    assert response.status_code == 200, response.text


@pytest.fixture
def app_client(make_client: Callable[..., TestClient], settings: Settings) -> TestClient:  # noqa: F811
    return make_client(settings, FakePredictor(), follow_redirects=False)


@pytest.fixture
def seeded(app_client: TestClient, keys: SimpleNamespace) -> TestClient:  # noqa: F811
    seed(app_client, keys.score)
    return app_client


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no csrf_token field on the page"
    return match.group(1)


def login(client: TestClient, username: str, password: str, *, next_path: str = "") -> TestClient:
    page = client.get("/moderation/login")
    assert page.status_code == 200
    response = client.post(
        "/moderation/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_of(page.text),
            "next": next_path,
        },
    )
    assert response.status_code == 303, response.text
    return client


@pytest.fixture
def moderator(seeded: TestClient, users: Accounts) -> TestClient:
    return login(seeded, users.moderator, PASSWORD)


def thread_pk(sessions: sessionmaker[Session], community_id: str, thread_id: str) -> int:
    from serving.moderation.queries import thread_pk_of

    with sessions() as db:
        pk = thread_pk_of(db, community_id, thread_id)
    assert pk is not None
    return pk


def comment_pk(sessions: sessionmaker[Session], community_id: str, comment_id: str) -> int:
    from sqlalchemy import select

    from serving.storage.models import Comment

    with sessions() as db:
        pk = db.scalar(select(Comment.id).where(Comment.community_id == community_id, Comment.comment_id == comment_id))
    assert pk is not None
    return pk
