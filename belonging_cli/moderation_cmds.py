"""Moderator accounts and the feedback loop. Never imports torch or training.

Usage:
    belong users add NAME --role moderator|admin [--database-url URL]   # password prompted twice
    belong users list | belong users disable NAME | belong users enable NAME | belong users passwd NAME
    belong feedback export --out feedback.jsonl [--since 2025-02-01] [--database-url URL]
then
    belong train --data seeds --data feedback.jsonl --out models/NAME
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

DB_OPTION = typer.Option(None, "--database-url", help="SQLAlchemy URL (default: BELONG_DATABASE_URL or "
                                                      "sqlite:///var/belonging.db).")
WILDCARD_HOSTS = {"0.0.0.0", "::", "[::]", ""}

users_app = typer.Typer(help="Moderator accounts for the pages at /moderation (passwords hashed with "
                             "argon2id).", no_args_is_help=True)
feedback_app = typer.Typer(help="Moderators' reviews as training data.", no_args_is_help=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _settings(database_url: str | None) -> Any:
    from pydantic import ValidationError

    from serving.settings import Settings

    try:
        return Settings(**({"database_url": database_url} if database_url else {}))
    except ValidationError as exc:
        raise _fail(f"invalid settings: {exc.errors()[0]['msg']}") from exc


@contextmanager
def _sessions(settings: Any) -> Iterator[Any]:
    """A sessionmaker on a database at the newest revision (SQLite is migrated on the spot)."""
    from serving.storage.db import DatabaseNotMigrated, make_sessionmaker, open_at_head

    try:
        engine = open_at_head(settings.database_url, settings.migrate_on_start)
    except DatabaseNotMigrated as exc:
        raise _fail(str(exc), 1) from exc
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return typer.prompt("Password (12 characters or more)", hide_input=True, confirmation_prompt=True)


def login_url(settings: Any) -> str:
    host = "127.0.0.1" if settings.host in WILDCARD_HOSTS else settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/moderation/login"


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="Login name: 2-64 of a-z 0-9 . _ - (stored in lower case)."),
    role: str = typer.Option(..., "--role", help="moderator (review threads) or admin (also manage users)."),
    password_stdin: bool = typer.Option(False, "--password-stdin",
                                        help="Read the password from the first line of stdin (for scripts)."),
    database_url: str = DB_OPTION,
) -> None:
    """Create an account; the password is prompted (twice) and stored as an argon2id hash."""
    from serving.moderation import accounts
    from serving.moderation.audit import Actor

    settings = _settings(database_url)
    try:
        username = accounts.check_username(name)
        accounts.check_role(role)
    except accounts.AccountError as exc:
        raise _fail(str(exc)) from exc
    password = _read_password(password_stdin)
    try:
        accounts.check_password(password, username)
        with _sessions(settings) as sessions, sessions.begin() as db:
            accounts.create_user(db, username, password, role, actor=Actor.cli())
    except accounts.AccountError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"created {role} {username!r}; log in at {login_url(settings)}")


@users_app.command("list")
def users_list(database_url: str = DB_OPTION) -> None:
    """List accounts (never their passwords)."""
    from serving.moderation.accounts import list_users

    with _sessions(_settings(database_url)) as sessions, sessions() as db:
        for u in list_users(db):
            state = f"disabled {u.disabled_at:%Y-%m-%d}" if u.disabled_at else "active"
            last = f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "never"
            typer.echo(f"{u.username}\t{u.role}\t{state}\tlast login {last}")


def _change(name: str, database_url: str | None, change: Any) -> None:
    from serving.moderation.accounts import AccountError, find_user
    from serving.moderation.audit import Actor

    with _sessions(_settings(database_url)) as sessions, sessions.begin() as db:
        user = find_user(db, name)
        if user is None:
            raise _fail(f"no user named {name!r}", 1)
        try:
            change(db, user.id, Actor.cli())
        except AccountError as exc:
            raise _fail(str(exc)) from exc


@users_app.command("disable")
def users_disable(name: str = typer.Argument(...), database_url: str = DB_OPTION) -> None:
    """Disable an account and end its sessions (its audit entries stay)."""
    from serving.moderation.accounts import set_active

    _change(name, database_url, lambda db, uid, actor: set_active(db, uid, False, actor=actor))
    typer.echo(f"disabled {name!r}")


@users_app.command("enable")
def users_enable(name: str = typer.Argument(...), database_url: str = DB_OPTION) -> None:
    """Enable a disabled account."""
    from serving.moderation.accounts import set_active

    _change(name, database_url, lambda db, uid, actor: set_active(db, uid, True, actor=actor))
    typer.echo(f"enabled {name!r}")


@users_app.command("passwd")
def users_passwd(
    name: str = typer.Argument(...),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    database_url: str = DB_OPTION,
) -> None:
    """Set a new password (prompted) and end the account's sessions."""
    from serving.moderation.accounts import set_password

    password = _read_password(password_stdin)
    _change(name, database_url, lambda db, uid, actor: set_password(db, uid, password, actor=actor))
    typer.echo(f"password of {name!r} set; their sessions have ended")


def parse_since(value: str | None) -> datetime | None:
    """YYYY-MM-DD (UTC midnight) or an RFC 3339 date-time, as naive UTC."""
    if value is None:
        return None
    from serving.timefmt import parse_rfc3339, to_db

    try:
        if len(value) == 10:
            return datetime.strptime(value, "%Y-%m-%d")
        return to_db(parse_rfc3339(value))
    except ValueError as exc:
        raise typer.BadParameter(f"expected YYYY-MM-DD or an RFC 3339 date-time, got {value!r}",
                                 param_hint="--since") from exc


@feedback_app.command("export")
def feedback_export(
    out: Annotated[Path, typer.Option("--out", help="JSON Lines to write (seed schema plus provenance).")],
    since: str = typer.Option(None, "--since", help="Only comments reviewed at or after this date (UTC): "
                                                   "YYYY-MM-DD or RFC 3339."),
    database_url: str = DB_OPTION,
) -> None:
    """Write moderator-reviewed comments as training rows: `belong train --data seeds --data OUT`."""
    from serving.moderation.feedback import write_feedback

    start = parse_since(since)
    with _sessions(_settings(database_url)) as sessions, sessions() as db:
        n = write_feedback(db, out, start)
    when = f" reviewed since {start:%Y-%m-%d %H:%M} UTC" if start else ""
    typer.echo(f"{n} reviewed comment(s){when} written to {out}")
    if n == 0:
        typer.echo("nothing reviewed yet: confirm, reject or add tags on the moderator pages first", err=True)


def register(app: typer.Typer) -> None:
    """Attach `users` and `feedback` to the `belong` app."""
    app.add_typer(users_app, name="users")
    app.add_typer(feedback_app, name="feedback")
