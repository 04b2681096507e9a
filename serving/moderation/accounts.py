"""Moderator accounts, login sessions and login throttling.

Usage (inside a transaction, `with sessions.begin() as db:`):
    user = create_user(db, "alice", "a long passphrase", "moderator", actor=Actor.cli())
    outcome = attempt_login(db, "alice", "a long passphrase", ip="10.0.0.5", settings=settings)
    token = outcome.token                            # the cookie value; only its sha256 is stored
    viewer = resolve_session(db, token, settings)   # None once expired, idle, or the user disabled

Passwords are hashed with argon2id (argon2-cffi defaults). An unknown username costs the same
argon2 verification as a known one, so timing does not tell which usernames exist.

Login throttling (docs/moderation.md), built so that an attacker cannot lock out everyone behind
the same IP (an office NAT, a proxy):
- per (username, IP): after `max_failures` failed logins within `lock_minutes`, that pair is
  refused without checking the password until the oldest of those failures is `lock_minutes` old
  (a success from that IP resets the count);
- per IP: after `max_failures_per_ip` failed logins from one IP (any usernames) within
  `lock_minutes`, that IP is refused for usernames that have not logged in successfully from it in
  the last 30 days. A moderator who has logged in from there before is still checked, so password
  spraying from a shared IP never locks out a colleague who types the right password. While the IP
  is over its budget, a wrong password for such a username is answered like the refusal (429), so
  the answer does not tell which usernames log in from that IP.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from serving.labels import ROLES
from serving.moderation.audit import Actor, record
from serving.moderation.settings import ModerationSettings
from serving.storage.keys import hash_token
from serving.storage.moderation import LoginAttempt, LoginSession, Moderator
from serving.timefmt import utcnow

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
TOUCH_EVERY = timedelta(seconds=60)  # write last_seen_at at most this often
KEEP_ATTEMPTS = timedelta(days=7)  # failed attempts
TRUSTED_FOR = timedelta(days=30)  # a successful login from an IP exempts that pair from the IP limit this long

hasher = PasswordHasher()


class AccountError(ValueError):
    """A refused account change; the message is safe to show."""


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hasher.hash(secrets.token_urlsafe(16))


def normalize_username(username: str) -> str:
    return username.strip().lower()


def check_username(username: str) -> str:
    name = normalize_username(username)
    if not USERNAME_RE.match(name):
        raise AccountError(
            "usernames are 2 to 64 characters: letters a-z, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_password(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"passwords need at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"passwords have at most {MAX_PASSWORD} characters")
    if not password.strip():
        raise AccountError("a password cannot be only spaces")
    if password.strip().lower() == username.lower():
        raise AccountError("the password cannot be the username")


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"role must be one of {list(ROLES)}, got {role!r}")
    return role


def find_user(db: Session, username: str) -> Moderator | None:
    return db.scalar(select(Moderator).where(Moderator.username == normalize_username(username)))


def list_users(db: Session) -> list[Moderator]:
    return list(db.scalars(select(Moderator).order_by(Moderator.username)))


def _user_state(user: Moderator) -> dict[str, object]:
    return {"role": user.role, "active": user.disabled_at is None}


def create_user(db: Session, username: str, password: str, role: str, *, actor: Actor) -> Moderator:
    name = check_username(username)
    check_role(role)
    check_password(password, name)
    if find_user(db, name) is not None:
        raise AccountError(f"a user named {name!r} already exists")
    now = utcnow()
    user = Moderator(
        username=name, password_hash=hasher.hash(password), role=role, created_at=now, password_changed_at=now
    )
    db.add(user)
    db.flush()
    record(db, actor, "user.create", target_user=name, before=None, after=_user_state(user))
    return user


def _active_admins(db: Session) -> int:
    query = (
        select(func.count()).select_from(Moderator).where(Moderator.role == "admin", Moderator.disabled_at.is_(None))
    )
    return int(db.scalar(query) or 0)


def _lock_user(db: Session, user_id: int) -> Moderator:
    user = db.scalar(select(Moderator).where(Moderator.id == user_id).with_for_update())
    if user is None:
        raise AccountError(f"no user with id {user_id}")
    return user


def set_role(db: Session, user_id: int, role: str, *, actor: Actor) -> bool:
    """Change a role; False when it already was that. Refuses to demote the last active admin."""
    check_role(role)
    user = _lock_user(db, user_id)
    if user.role == role:
        return False
    if user.role == "admin" and user.disabled_at is None and _active_admins(db) <= 1:
        raise AccountError("this is the last active admin: make someone else admin first")
    before = _user_state(user)
    user.role = role
    record(db, actor, "user.role", target_user=user.username, before=before, after=_user_state(user))
    return True


def set_active(db: Session, user_id: int, active: bool, *, actor: Actor) -> bool:
    """Enable or disable an account (disabling ends its sessions); False when nothing changed."""
    user = _lock_user(db, user_id)
    if (user.disabled_at is None) == active:
        return False
    if not active and user.role == "admin" and _active_admins(db) <= 1:
        raise AccountError("this is the last active admin: make someone else admin first")
    before = _user_state(user)
    user.disabled_at = None if active else utcnow()
    if not active:
        db.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    record(
        db,
        actor,
        "user.enable" if active else "user.disable",
        target_user=user.username,
        before=before,
        after=_user_state(user),
    )
    return True


def set_password(db: Session, user_id: int, password: str, *, actor: Actor) -> None:
    """Set a new password and end the user's sessions (a stolen cookie dies with the old password)."""
    user = _lock_user(db, user_id)
    check_password(password, user.username)
    user.password_hash = hasher.hash(password)
    user.password_changed_at = utcnow()
    db.execute(delete(LoginSession).where(LoginSession.user_id == user.id))
    record(db, actor, "user.password", target_user=user.username, before=None, after=None)


# --- login and throttling ---


@dataclass(frozen=True)
class LoginOutcome:
    token: str | None = None  # set on success: the session cookie's value
    user: Moderator | None = None
    retry_after: timedelta | None = None  # set when locked out

    @property
    def ok(self) -> bool:
        return self.token is not None


def _locked_for(failures: list[datetime], limit: int, window: timedelta, now: datetime) -> timedelta | None:
    """Locked until the oldest of the last `limit` failures leaves the window."""
    if len(failures) < limit:
        return None
    wait = failures[limit - 1] + window - now
    return wait if wait > timedelta(0) else None


def _failures(db: Session, limit: int, *where: Any) -> list[datetime]:
    query = select(LoginAttempt.at).where(*where, LoginAttempt.success.is_(False))
    return list(db.scalars(query.order_by(LoginAttempt.at.desc()).limit(limit)))


def pair_lockout(db: Session, username: str, ip: str, settings: ModerationSettings, now: datetime) -> timedelta | None:
    """How long this (username, IP) is still locked out after too many failures; None when it may try."""
    window = timedelta(minutes=settings.lock_minutes)
    last_success = db.scalar(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.username == username, LoginAttempt.ip == ip, LoginAttempt.success.is_(True)
        )
    )
    since = max(now - window, last_success) if last_success else now - window
    where = (LoginAttempt.username == username, LoginAttempt.ip == ip, LoginAttempt.at > since)
    return _locked_for(_failures(db, settings.max_failures, *where), settings.max_failures, window, now)


def ip_lockout(db: Session, ip: str, settings: ModerationSettings, now: datetime) -> timedelta | None:
    """How long this IP is over its failure budget; None when it is not."""
    window = timedelta(minutes=settings.lock_minutes)
    where = (LoginAttempt.ip == ip, LoginAttempt.at > now - window)
    return _locked_for(_failures(db, settings.max_failures_per_ip, *where), settings.max_failures_per_ip, window, now)


def trusted_pair(db: Session, username: str, ip: str, now: datetime) -> bool:
    """This username logged in successfully from this IP in the last TRUSTED_FOR."""
    query = select(LoginAttempt.id).where(
        LoginAttempt.username == username,
        LoginAttempt.ip == ip,
        LoginAttempt.success.is_(True),
        LoginAttempt.at > now - TRUSTED_FOR,
    )
    return db.scalar(query.limit(1)) is not None


def lockout_remaining(
    db: Session, username: str, ip: str, settings: ModerationSettings, now: datetime | None = None
) -> timedelta | None:
    """How long this (username, IP) may not even try; None when its password will be checked."""
    now = now or utcnow()
    pair = pair_lockout(db, username, ip, settings, now)
    if pair is not None:
        return pair
    if trusted_pair(db, username, ip, now):
        return None
    return ip_lockout(db, ip, settings, now)


def attempt_login(
    db: Session, username: str, password: str, *, ip: str, user_agent: str = "", settings: ModerationSettings
) -> LoginOutcome:
    """Check a login; on success create a session. Every checked attempt is recorded."""
    name = normalize_username(username)[:64]
    ip = ip[:64]
    now = utcnow()
    wait = lockout_remaining(db, name, ip, settings, now)
    if wait is not None:
        return LoginOutcome(retry_after=wait)
    user = find_user(db, name) if USERNAME_RE.match(name) else None
    valid = False
    try:
        valid = hasher.verify(user.password_hash if user else _dummy_hash(), password[:MAX_PASSWORD])
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        valid = False
    valid = valid and user is not None and user.disabled_at is None
    db.add(LoginAttempt(username=name, ip=ip, at=now, success=valid))
    db.execute(
        delete(LoginAttempt).where(
            ((LoginAttempt.success.is_(False)) & (LoginAttempt.at < now - KEEP_ATTEMPTS))
            | (LoginAttempt.at < now - TRUSTED_FOR)
        )
    )
    if not valid or user is None:
        # A trusted pair checked while its IP is over budget: answer as the refusal does.
        return LoginOutcome(retry_after=ip_lockout(db, ip, settings, now))
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.last_login_at = now
    token = secrets.token_urlsafe(32)
    db.add(
        LoginSession(
            token_hash=hash_token(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + timedelta(hours=settings.session_hours),
            last_seen_at=now,
            ip=ip,
            user_agent=user_agent[:200],
        )
    )
    db.execute(delete(LoginSession).where(LoginSession.user_id == user.id, LoginSession.expires_at < now))
    return LoginOutcome(token=token, user=user)


@dataclass(frozen=True)
class Viewer:
    """The logged-in moderator of a request."""

    user_id: int
    username: str
    role: str
    session_id: int
    csrf_token: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def actor(self, ip: str | None) -> Actor:
        return Actor(id=self.user_id, name=self.username, ip=ip)


def resolve_session(db: Session, token: str, settings: ModerationSettings) -> Viewer | None:
    """The viewer behind a cookie token, or None (unknown, expired, idle too long, user disabled)."""
    if not token or len(token) > 200:
        return None
    now = utcnow()
    found = db.execute(
        select(LoginSession, Moderator)
        .join(Moderator, Moderator.id == LoginSession.user_id)
        .where(LoginSession.token_hash == hash_token(token))
    ).first()
    if found is None:
        return None
    login, user = found
    idle = timedelta(minutes=settings.idle_minutes)
    if login.expires_at <= now or login.last_seen_at + idle <= now or user.disabled_at is not None:
        db.delete(login)
        return None
    if now - login.last_seen_at >= TOUCH_EVERY:
        login.last_seen_at = now
    return Viewer(
        user_id=user.id, username=user.username, role=user.role, session_id=login.id, csrf_token=login.csrf_token
    )


def end_session(db: Session, session_id: int) -> None:
    db.execute(delete(LoginSession).where(LoginSession.id == session_id))


def tokens_match(expected: str, given: str | None) -> bool:
    return bool(given) and secrets.compare_digest(expected.encode(), (given or "").encode())
