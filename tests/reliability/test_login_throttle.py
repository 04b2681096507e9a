"""Login throttling cannot lock a moderator with the right password out of a shared IP."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from serving.moderation import accounts
from serving.moderation.audit import Actor
from serving.moderation.settings import ModerationSettings
from serving.storage.db import make_engine, make_sessionmaker

OFFICE = "203.0.113.7"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def sessions(db_url, monkeypatch):
    monkeypatch.setattr(accounts, "hasher", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    accounts._dummy_hash.cache_clear()
    engine = make_engine(db_url)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as db:
        for name in ("alice", "bob", "carol"):
            accounts.create_user(db, name, PASSWORD, "moderator", actor=Actor.cli())
    yield sessions
    engine.dispose()


def login(sessions, username: str, password: str, ip: str = OFFICE) -> accounts.LoginOutcome:
    with sessions.begin() as db:
        return accounts.attempt_login(
            db, username, password, ip=ip, settings=ModerationSettings(max_failures_per_ip=20)
        )


def test_spraying_other_usernames_from_a_shared_ip_does_not_lock_out_a_colleague(sessions):
    assert login(sessions, "alice", PASSWORD).ok  # alice works from the office
    for i in range(100):  # an attacker behind the same NAT sprays usernames, known and unknown
        outcome = login(sessions, "bob" if i % 2 else f"user{i}", "password123456")
        assert not outcome.ok
    assert login(sessions, "user1000", PASSWORD).retry_after is not None  # the IP is over its budget
    assert login(sessions, "alice", PASSWORD).ok  # the right password still works
    # Over the budget, alice's typo is answered like the refusal: no tell which names log in here.
    typo = login(sessions, "alice", "wrong password!")
    assert not typo.ok and typo.retry_after is not None
    assert login(sessions, "alice", PASSWORD).ok
    assert login(sessions, "carol", PASSWORD, ip="198.51.100.1").ok  # other IPs are untouched


def test_a_username_new_to_the_ip_waits_while_it_is_sprayed(sessions):
    for i in range(20):
        login(sessions, f"user{i}", "password123456")
    outcome = login(sessions, "carol", PASSWORD)  # never logged in from here: the IP limit applies
    assert not outcome.ok and outcome.retry_after is not None


def test_guessing_one_trusted_account_is_still_limited_per_pair(sessions):
    assert login(sessions, "alice", PASSWORD).ok
    for _ in range(5):
        assert not login(sessions, "alice", "wrong password!").ok
    locked = login(sessions, "alice", PASSWORD)  # 5 failures on this (username, IP): not even checked
    assert not locked.ok and locked.retry_after is not None
