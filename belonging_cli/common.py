"""What the `belong` commands share: settings, the store, the --database-url option, error exits.

Usage in a command:
    settings = load_settings(database_url=database_url)          # exits 2 on invalid settings
    with store(settings) as sessions, sessions.begin() as db: ...  # exits 1 if not migrated
    raise fail("no user named 'x'", 1)

Imports of serving happen inside the functions, so `belong --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

    from serving.settings import Settings

err = Console(stderr=True, soft_wrap=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="SQLAlchemy URL (default: BELONG_DATABASE_URL or sqlite:///var/belonging.db)."),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: message` on stderr; `raise fail(...)` exits with `code` (2: bad input, 1: failed)."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def load_settings(**overrides: Any) -> Settings:
    """Settings from BELONG_* variables, with the options given on the command line (not None) on top."""
    from pydantic import ValidationError

    from serving.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise fail(f"invalid settings: {problems}") from exc


@contextmanager
def store(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on a database at the newest revision (SQLite is migrated on the spot, PostgreSQL
    only checked unless BELONG_AUTO_MIGRATE=true); the engine is disposed at the end."""
    from serving.storage.db import DatabaseNotMigrated, make_sessionmaker, open_at_head

    try:
        engine = open_at_head(settings.database_url, settings.migrate_on_start)
    except DatabaseNotMigrated as exc:
        raise fail(str(exc), 1) from exc
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()
