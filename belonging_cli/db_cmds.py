"""`belong db`: the store's schema (Alembic migrations shipped in serving/storage/migrations).

Usage:
    belong db upgrade [--database-url URL] [--revision REV]
    belong db current [--database-url URL]
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from belonging_cli.common import DatabaseUrl, err, load_settings

app = typer.Typer(
    help="The store's schema (Alembic migrations shipped in serving/storage/migrations).", no_args_is_help=True
)


@app.command("upgrade")
def db_upgrade(
    database_url: DatabaseUrl = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Migrate the database to the newest (or the given) revision."""
    from serving.storage.db import current_revision, make_engine, upgrade

    engine = make_engine(load_settings(database_url=database_url).database_url)
    try:
        upgrade(engine, revision)
        err.print(f"database at revision {current_revision(engine)}")
    finally:
        engine.dispose()


@app.command("current")
def db_current(database_url: DatabaseUrl = None) -> None:
    """Print the database's revision and the newest one."""
    from serving.storage.db import current_revision, head_revision, make_engine

    engine = make_engine(load_settings(database_url=database_url).database_url)
    try:
        sys.stdout.write(f"current {current_revision(engine) or 'none'}, head {head_revision()}\n")
    finally:
        engine.dispose()
