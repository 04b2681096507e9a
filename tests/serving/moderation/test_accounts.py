"""Accounts, login sessions, cookies, throttling and the `belong users` commands."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from belonging_cli.main import app as cli
from serving.moderation import accounts
from serving.moderation.accounts import AccountError
from serving.moderation.audit import Actor
from serving.moderation.settings import ModerationSettings
from serving.storage.moderation import AuditEntry, LoginAttempt, LoginSession, Moderator
from serving.timefmt import utcnow
from tests.serving.moderation.conftest import PASSWORD, csrf_of, login

runner = CliRunner()


def test_production_hasher_is_argon2id_with_strong_parameters():
    hasher = accounts.PasswordHasher()  # what accounts.hasher is outside these tests
    assert hasher.memory_cost >= 64 * 1024 and hasher.time_cost >= 2
    assert hasher.hash("a long enough password").startswith("$argon2id$")


def test_users_add_prompts_twice_and_stores_an_argon2_hash(db_url, sessions):
    result = runner.invoke(
        cli,
        ["users", "add", "Alice", "--role", "moderator", "--database-url", db_url],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    assert "created moderator 'alice'; log in at http://127.0.0.1:8000/moderation/login" in result.output
    assert PASSWORD not in result.output
    with sessions() as db:
        user = db.scalar(select(Moderator).where(Moderator.username == "alice"))
        assert user is not None and user.role == "moderator"
        assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
        entry = db.scalar(select(AuditEntry).where(AuditEntry.action == "user.create"))
        assert entry is not None and entry.target_user == "alice" and entry.actor.startswith("cli:")


def test_users_add_refuses_bad_input(db_url):
    short = runner.invoke(
        cli,
        ["users", "add", "bob", "--role", "moderator", "--password-stdin", "--database-url", db_url],
        input="short\n",
    )
    assert short.exit_code == 2 and "passwords need at least 12 characters" in short.output
    role = runner.invoke(cli, ["users", "add", "bob", "--role", "root", "--database-url", db_url])
    assert role.exit_code == 2 and "role must be one of ['moderator', 'admin']" in role.output
    name = runner.invoke(cli, ["users", "add", "<b>x", "--role", "admin", "--database-url", db_url])
    assert name.exit_code == 2 and "usernames are 2 to 64 characters" in name.output
    ok = runner.invoke(
        cli,
        ["users", "add", "bob", "--role", "admin", "--password-stdin", "--database-url", db_url],
        input=f"{PASSWORD}\n",
    )
    assert ok.exit_code == 0, ok.output
    again = runner.invoke(
        cli,
        ["users", "add", "BOB", "--role", "admin", "--password-stdin", "--database-url", db_url],
        input=f"{PASSWORD}\n",
    )
    assert again.exit_code == 2 and "a user named 'bob' already exists" in again.output


def test_users_disable_ends_sessions_and_list_shows_it(seeded, users, db_url, sessions):
    login(seeded, users.moderator, PASSWORD)
    assert seeded.get("/moderation/").status_code == 200
    result = runner.invoke(cli, ["users", "disable", users.moderator, "--database-url", db_url])
    assert result.exit_code == 0, result.output
    assert seeded.get("/moderation/").status_code == 303
    listing = runner.invoke(cli, ["users", "list", "--database-url", db_url])
    assert "mia\tmoderator\tdisabled" in listing.output
    missing = runner.invoke(cli, ["users", "disable", "nobody", "--database-url", db_url])
    assert missing.exit_code == 1 and "no user named 'nobody'" in missing.output


def test_last_admin_cannot_be_demoted_or_disabled(sessions, users):
    with sessions.begin() as db, pytest.raises(AccountError, match="last active admin"):
        accounts.set_role(db, users.admin_id, "moderator", actor=Actor.cli())
    with sessions.begin() as db, pytest.raises(AccountError, match="last active admin"):
        accounts.set_active(db, users.admin_id, False, actor=Actor.cli())


def test_login_sets_a_hardened_cookie_and_stores_only_a_hash(seeded, users, sessions):
    page = seeded.get("/moderation/login")
    response = seeded.post(
        "/moderation/login",
        data={
            "username": "MIA",
            "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "next": "/moderation/audit",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/moderation/audit"
    cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith("belong_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/moderation" in cookie
    assert "Secure" not in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    with sessions() as db:
        stored = db.scalars(select(LoginSession)).all()
        assert [s.token_hash for s in stored] == [accounts.hash_token(token)]
        assert all(token not in (s.token_hash, s.csrf_token) for s in stored)


def test_cookie_is_secure_when_configured(seeded, users):
    seeded.app.state.moderation.settings = ModerationSettings(cookie_secure=True)
    https = TestClient(seeded.app, base_url="https://testserver", follow_redirects=False)  # Secure cookies need TLS
    page = https.get("/moderation/login")
    assert "Secure" in page.headers["set-cookie"]
    response = https.post(
        "/moderation/login", data={"username": "mia", "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert response.status_code == 303
    assert "Secure" in next(v for v in response.headers.get_list("set-cookie") if v.startswith("belong_session="))


def test_wrong_password_and_unknown_user_get_the_same_answer(seeded, users):
    page = seeded.get("/moderation/login")
    token = csrf_of(page.text)
    wrong = seeded.post(
        "/moderation/login", data={"username": "mia", "password": "not the password", "csrf_token": token}
    )
    unknown = seeded.post(
        "/moderation/login", data={"username": "nobody", "password": "not the password", "csrf_token": token}
    )
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "Wrong username or password." in response.text
        assert "belong_session" not in response.headers.get("set-cookie", "")


def test_login_needs_its_csrf_token(seeded, users):
    seeded.get("/moderation/login")
    response = seeded.post("/moderation/login", data={"username": "mia", "password": PASSWORD, "csrf_token": "x"})
    assert response.status_code == 403
    assert "The login form expired" in response.text


def test_five_failures_lock_the_username_and_ip_for_15_minutes(seeded, users, sessions, monkeypatch):
    token = csrf_of(seeded.get("/moderation/login").text)

    def attempt(username: str, password: str):
        return seeded.post("/moderation/login", data={"username": username, "password": password, "csrf_token": token})

    for _ in range(5):
        assert attempt("mia", "wrong password!").status_code == 401
    locked = attempt("mia", PASSWORD)  # right password, but locked: not even checked
    assert locked.status_code == 429
    assert "Too many failed logins. Try again in 15 minute(s)." in locked.text
    assert 890 <= int(locked.headers["retry-after"]) <= 901
    assert attempt(users.admin, "admin passphrase for tests").status_code == 303  # other usernames are not locked
    with sessions() as db:  # the refused attempt was not recorded (it cannot prolong the lock)
        assert db.query(LoginAttempt).filter_by(username="mia", success=False).count() == 5

    later = utcnow() + timedelta(minutes=15, seconds=1)
    monkeypatch.setattr(accounts, "utcnow", lambda: later)
    seeded.cookies.clear()  # log the admin out of this client, fetch a fresh login form
    token = csrf_of(seeded.get("/moderation/login").text)
    assert attempt("mia", PASSWORD).status_code == 303


def test_a_success_resets_the_failure_count(sessions, users):
    settings = ModerationSettings()
    with sessions.begin() as db:
        for _ in range(4):
            assert not accounts.attempt_login(db, "mia", "wrong password!", ip="1.2.3.4", settings=settings).ok
        assert accounts.attempt_login(db, "mia", PASSWORD, ip="1.2.3.4", settings=settings).ok
        for _ in range(4):
            accounts.attempt_login(db, "mia", "wrong password!", ip="1.2.3.4", settings=settings)
        assert accounts.lockout_remaining(db, "mia", "1.2.3.4", settings) is None
        assert accounts.lockout_remaining(db, "mia", "5.6.7.8", settings) is None
        accounts.attempt_login(db, "mia", "wrong password!", ip="1.2.3.4", settings=settings)
        assert accounts.lockout_remaining(db, "mia", "1.2.3.4", settings) > timedelta(minutes=14)
        assert accounts.lockout_remaining(db, "mia", "5.6.7.8", settings) is None  # per username and IP


def test_one_ip_spraying_usernames_is_locked(sessions, users):
    settings = ModerationSettings(max_failures_per_ip=10)
    with sessions.begin() as db:
        for i in range(10):
            accounts.attempt_login(db, f"user{i}", "wrong password!", ip="9.9.9.9", settings=settings)
        outcome = accounts.attempt_login(db, "mia", PASSWORD, ip="9.9.9.9", settings=settings)
    assert not outcome.ok and outcome.retry_after is not None


def test_sessions_expire_when_idle_or_old(moderator, sessions):
    assert moderator.get("/moderation/").status_code == 200
    with sessions.begin() as db:
        db.execute(update(LoginSession).values(last_seen_at=utcnow() - timedelta(hours=3)))
    assert moderator.get("/moderation/").status_code == 303  # idle > 2 h
    with sessions() as db:
        assert db.query(LoginSession).count() == 0  # and the dead session is gone


def test_sessions_have_an_absolute_lifetime(moderator, sessions):
    with sessions.begin() as db:
        db.execute(update(LoginSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = moderator.get("/moderation/audit")
    assert response.status_code == 303
    assert response.headers["location"] == "/moderation/login?next=/moderation/audit"


def test_logout_ends_the_session_on_the_server(moderator, sessions):
    page = moderator.get("/moderation/")
    token = moderator.cookies.get("belong_session")
    response = moderator.post("/moderation/logout", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 303 and response.headers["location"] == "/moderation/login"
    with sessions() as db:
        assert db.query(LoginSession).count() == 0
    moderator.cookies.set("belong_session", token, path="/moderation")  # a copied cookie is dead too
    assert moderator.get("/moderation/").status_code == 303


def test_password_change_ends_sessions(moderator, sessions, users):
    with sessions.begin() as db:
        accounts.set_password(db, users.moderator_id, "a brand new passphrase", actor=Actor.cli())
    assert moderator.get("/moderation/").status_code == 303
