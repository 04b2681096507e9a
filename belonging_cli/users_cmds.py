"""`belong users`: moderator accounts for the pages at /moderation. Never imports torch or training.

Usage:
    belong users add NAME --role moderator|admin [--database-url URL]   # password prompted twice
    belong users list | belong users disable NAME | belong users enable NAME | belong users passwd NAME
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from belonging_cli.common import DatabaseUrl, fail, load_settings, store

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from serving.moderation.audit import Actor
    from serving.settings import Settings

WILDCARD_HOSTS = {"0.0.0.0", "::", "[::]", ""}

app = typer.Typer(
    help="Moderator accounts for the pages at /moderation (passwords hashed with argon2id).", no_args_is_help=True
)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = typer.prompt("Password (12 characters or more)", hide_input=True, confirmation_prompt=True)
    return password


def login_url(settings: Settings) -> str:
    host = "127.0.0.1" if settings.host in WILDCARD_HOSTS else settings.host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/moderation/login"


PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from the first line of stdin (for scripts).")
]


@app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="Login name: 2-64 of a-z 0-9 . _ - (stored in lower case).")],
    role: Annotated[str, typer.Option("--role", help="moderator (review threads) or admin (also manage users).")],
    password_stdin: PasswordStdin = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an account; the password is prompted (twice) and stored as an argon2id hash."""
    from serving.moderation import accounts
    from serving.moderation.audit import Actor

    settings = load_settings(database_url=database_url)
    try:
        username = accounts.check_username(name)
        accounts.check_role(role)
    except accounts.AccountError as exc:
        raise fail(str(exc)) from exc
    password = _read_password(password_stdin)
    try:
        accounts.check_password(password, username)
        with store(settings) as sessions, sessions.begin() as db:
            accounts.create_user(db, username, password, role, actor=Actor.cli())
    except accounts.AccountError as exc:
        raise fail(str(exc)) from exc
    typer.echo(f"created {role} {username!r}; log in at {login_url(settings)}")


@app.command("list")
def users_list(database_url: DatabaseUrl = None) -> None:
    """List accounts (never their passwords)."""
    from serving.moderation.accounts import list_users

    with store(load_settings(database_url=database_url)) as sessions, sessions() as db:
        for u in list_users(db):
            state = f"disabled {u.disabled_at:%Y-%m-%d}" if u.disabled_at else "active"
            last = f"{u.last_login_at:%Y-%m-%d %H:%M}" if u.last_login_at else "never"
            typer.echo(f"{u.username}\t{u.role}\t{state}\tlast login {last}")


def _change(name: str, database_url: str | None, change: Callable[[Session, int, Actor], object]) -> None:
    from serving.moderation.accounts import AccountError, find_user
    from serving.moderation.audit import Actor

    with store(load_settings(database_url=database_url)) as sessions, sessions.begin() as db:
        user = find_user(db, name)
        if user is None:
            raise fail(f"no user named {name!r}", 1)
        try:
            change(db, user.id, Actor.cli())
        except AccountError as exc:
            raise fail(str(exc)) from exc


@app.command("disable")
def users_disable(name: Annotated[str, typer.Argument()], database_url: DatabaseUrl = None) -> None:
    """Disable an account and end its sessions (its audit entries stay)."""
    from serving.moderation.accounts import set_active

    _change(name, database_url, lambda db, uid, actor: set_active(db, uid, False, actor=actor))
    typer.echo(f"disabled {name!r}")


@app.command("enable")
def users_enable(name: Annotated[str, typer.Argument()], database_url: DatabaseUrl = None) -> None:
    """Enable a disabled account."""
    from serving.moderation.accounts import set_active

    _change(name, database_url, lambda db, uid, actor: set_active(db, uid, True, actor=actor))
    typer.echo(f"enabled {name!r}")


@app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument()],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Set a new password (prompted) and end the account's sessions."""
    from serving.moderation.accounts import set_password

    password = _read_password(password_stdin)
    _change(name, database_url, lambda db, uid, actor: set_password(db, uid, password, actor=actor))
    typer.echo(f"password of {name!r} set; their sessions have ended")
