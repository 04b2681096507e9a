"""`belong keys`: API keys. Created keys are printed once; only their sha256 is stored.

Usage:
    belong keys create --scopes score,read [--name NAME] [--database-url URL]   # prints the key once
    belong keys list | belong keys revoke ID
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from belonging_cli.common import DatabaseUrl, err, fail, load_settings, store

if TYPE_CHECKING:
    from serving.settings import Settings

app = typer.Typer(help="API keys: created keys are printed once; only their hash is stored.", no_args_is_help=True)


def issue_key(settings: Settings, name: str, scopes: Iterable[str]) -> str:
    """Create a key in the store and return its token (exits 2 on unknown scopes)."""
    from serving.storage.keys import create_key

    try:
        with store(settings) as sessions, sessions.begin() as session:
            return create_key(session, name=name, scopes=scopes).token
    except ValueError as exc:
        raise fail(str(exc)) from exc


@app.command("create")
def keys_create(
    scopes: Annotated[str, typer.Option("--scopes", help="Comma-separated: score, read, admin.")],
    name: Annotated[str, typer.Option("--name", help="A label to tell keys apart.")] = "cli",
    database_url: DatabaseUrl = None,
) -> None:
    """Create a key and print it on stdout (once)."""
    token = issue_key(load_settings(database_url=database_url), name, scopes.split(","))
    err.print(f"created key {name!r} with scopes {scopes}; store it now, it cannot be shown again:")
    sys.stdout.write(token + "\n")


@app.command("list")
def keys_list(database_url: DatabaseUrl = None) -> None:
    """List keys (never the keys themselves)."""
    from serving.storage.keys import list_keys

    table = Table("id", "name", "prefix", "scopes", "created", "revoked")
    with store(load_settings(database_url=database_url)) as sessions, sessions() as session:
        for k in list_keys(session):
            table.add_row(
                str(k.id),
                k.name,
                k.prefix + "…",
                k.scopes,
                f"{k.created_at:%Y-%m-%d %H:%M}",
                f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
            )
    Console().print(table)


@app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The id shown by `belong keys list`.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a key (running servers notice within BELONG_KEY_CACHE_SECONDS)."""
    from serving.storage.keys import revoke_key

    with store(load_settings(database_url=database_url)) as sessions, sessions.begin() as session:
        done = revoke_key(session, key_id)
    if not done:
        raise fail(f"no active key with id {key_id}", 1)
    err.print(f"revoked key {key_id}")
