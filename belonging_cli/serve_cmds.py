"""Serving-side commands: serve, keys, db, replay. Never imports torch or training.

Usage:
    belong serve --bundle models/default [--host 127.0.0.1] [--port 8000] [--database-url URL]
    belong keys create --scopes score,read [--name NAME]      # prints the key once
    belong keys list | belong keys revoke ID
    belong db upgrade [--database-url URL]
    belong replay FILE.jsonl --url http://127.0.0.1:8000 --key KEY [--rate N]
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from serving.labels import SCOPES, TAGS

log = logging.getLogger(__name__)
err = Console(stderr=True, soft_wrap=True)

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="SQLAlchemy URL (default: BELONG_DATABASE_URL or sqlite:///var/belonging.db)."),
]


def _settings(**overrides: Any) -> Any:
    """Settings from BELONG_* variables, with the options given on the command line on top."""
    from pydantic import ValidationError

    from serving.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        err.print(f"[red]invalid settings:[/red] {problems}")
        raise typer.Exit(2) from exc


def _open_store(settings: Any) -> Any:
    """An engine on a database that is at the newest revision (SQLite is migrated on the spot)."""
    from serving.storage.db import DatabaseNotMigrated, open_at_head

    try:
        return open_at_head(settings.database_url, settings.migrate_on_start)
    except DatabaseNotMigrated as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc


def _issue_key(settings: Any, name: str, scopes: list[str]) -> str:
    from serving.storage.db import make_sessionmaker
    from serving.storage.keys import create_key

    engine = _open_store(settings)
    try:
        with make_sessionmaker(engine).begin() as session:
            return create_key(session, name=name, scopes=scopes).token
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()


# --- serve ---


def serve(
    bundle: Annotated[
        Path | None,
        typer.Option("--bundle", help="Bundle folder (default: BELONG_BUNDLE or models/default)."),
    ] = None,
    host: Annotated[str | None, typer.Option("--host", help="Interface to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port (default 8000).")] = None,
    database_url: DatabaseUrl = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Accept requests without keys (loopback host only).")
    ] = False,
    issue_key: Annotated[
        bool, typer.Option("--issue-key", help="Create a key with all scopes and print it first.")
    ] = False,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request.")] = True,
) -> None:
    """Serve the scoring API (OpenAPI at /docs)."""
    import uvicorn

    from serving.api.app import create_app
    from serving.engine.bundle import BundleError

    settings = _settings(
        bundle=bundle,
        host=host,
        port=port,
        database_url=database_url,
        auth_disabled=True if no_auth else None,
    )
    if issue_key:
        token = _issue_key(settings, "local", list(SCOPES))
        err.print(f"API key for local use (scopes score, read, admin), shown once:\n[bold]{token}[/bold]")
    try:
        app = create_app(settings)
    except (BundleError, ValueError) as exc:
        err.print(f"[red]cannot serve:[/red] {exc}")
        raise typer.Exit(1) from exc
    if settings.auth_disabled:
        err.print(f"[yellow]API keys are OFF: only for local use on {settings.host}[/yellow]")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=access_log,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


# --- keys ---

keys_app = typer.Typer(help="API keys: created keys are printed once; only their hash is stored.", no_args_is_help=True)


@keys_app.command("create")
def keys_create(
    scopes: Annotated[str, typer.Option("--scopes", help="Comma-separated: score, read, admin.")],
    name: Annotated[str, typer.Option("--name", help="A label to tell keys apart.")] = "cli",
    database_url: DatabaseUrl = None,
) -> None:
    """Create a key and print it on stdout (once)."""
    token = _issue_key(_settings(database_url=database_url), name, scopes.split(","))
    err.print(f"created key {name!r} with scopes {scopes}; store it now, it cannot be shown again:")
    sys.stdout.write(token + "\n")


@keys_app.command("list")
def keys_list(database_url: DatabaseUrl = None) -> None:
    """List keys (never the keys themselves)."""
    from serving.storage.db import make_sessionmaker
    from serving.storage.keys import list_keys

    engine = _open_store(_settings(database_url=database_url))
    with make_sessionmaker(engine)() as session:
        table = Table("id", "name", "prefix", "scopes", "created", "revoked")
        for k in list_keys(session):
            table.add_row(
                str(k.id),
                k.name,
                k.prefix + "…",
                k.scopes,
                f"{k.created_at:%Y-%m-%d %H:%M}",
                f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "",
            )
    engine.dispose()
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The id shown by `belong keys list`.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Revoke a key (running servers notice within BELONG_KEY_CACHE_SECONDS)."""
    from serving.storage.db import make_sessionmaker
    from serving.storage.keys import revoke_key

    engine = _open_store(_settings(database_url=database_url))
    with make_sessionmaker(engine).begin() as session:
        done = revoke_key(session, key_id)
    engine.dispose()
    if not done:
        err.print(f"[red]no active key with id {key_id}[/red]")
        raise typer.Exit(1)
    err.print(f"revoked key {key_id}")


# --- db ---

db_app = typer.Typer(
    help="The store's schema (Alembic migrations shipped in serving/storage/migrations).", no_args_is_help=True
)


@db_app.command("upgrade")
def db_upgrade(
    database_url: DatabaseUrl = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Migrate the database to the newest (or the given) revision."""
    from serving.storage.db import current_revision, make_engine, upgrade

    settings = _settings(database_url=database_url)
    engine = make_engine(settings.database_url)
    upgrade(engine, revision)
    err.print(f"database at revision {current_revision(engine)}")
    engine.dispose()


@db_app.command("current")
def db_current(database_url: DatabaseUrl = None) -> None:
    """Print the database's revision and the newest one."""
    from serving.storage.db import current_revision, head_revision, make_engine

    engine = make_engine(_settings(database_url=database_url).database_url)
    sys.stdout.write(f"current {current_revision(engine) or 'none'}, head {head_revision()}\n")
    engine.dispose()


# --- replay ---


def replay(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSON Lines, one comment per line.")],
    key: Annotated[str, typer.Option("--key", envvar="BELONG_KEY", help="An API key with the score scope.")],
    url: Annotated[str, typer.Option("--url", help="The server's base URL.")] = "http://127.0.0.1:8000",
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.1, help="At most N comments per second (default: no limit)."),
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, max=256, help="Comments per request.")] = 32,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=256, help="Requests in flight.")] = 4,
    store: Annotated[bool, typer.Option("--store/--no-store", help="Ask the server to store the comments.")] = True,
    community: Annotated[str | None, typer.Option("--community", help="Set community_id on every comment.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N lines.")] = None,
    thread_size: Annotated[
        int | None,
        typer.Option("--thread-size", min=2, help="Group comments without thread_id into threads of N (demos)."),
    ] = None,
) -> None:
    """Stream a JSON Lines file into a server with a progress bar, then print a summary."""
    import itertools
    import tempfile

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from belonging_cli.replay import replay as run_replay

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns the bar
    source = file
    if limit is not None:
        tmp = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False, encoding="utf-8")
        with file.open(encoding="utf-8") as handle, tmp:
            tmp.writelines(itertools.islice(handle, limit))
        source = Path(tmp.name)
    columns = (TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=err, transient=False) as progress:
            task = progress.add_task("replay", total=None)
            summary = asyncio.run(
                run_replay(
                    source,
                    url=url,
                    key=key,
                    rate=rate,
                    batch_size=batch,
                    concurrency=concurrency,
                    store=store,
                    community_id=community,
                    thread_size=thread_size,
                    on_progress=lambda done, total: progress.update(task, completed=done, total=total),
                )
            )
    finally:
        if source != file:
            source.unlink()
    print_summary(summary)
    if summary.scored == 0 and summary.lines:
        raise typer.Exit(1)


def print_summary(summary: Any) -> None:
    console = Console(soft_wrap=True)
    console.print(f"replayed {summary.lines} lines in {summary.seconds:.1f} s ({summary.rate:.0f} comments/s)")
    table = Table("", "comments", "share")
    table.add_row("scored", str(summary.scored), "")
    for tag in TAGS:
        share = summary.tags[tag] / summary.scored if summary.scored else 0.0
        table.add_row(f"  {tag}", str(summary.tags[tag]), f"{share:.1%}")
    table.add_row("  truncated", str(summary.truncated), "")
    table.add_row("errors", str(summary.errors), "")
    for reason, n in summary.error_reasons.most_common():
        table.add_row(f"  {reason}", str(n), "")
    console.print(table)
    if summary.langs:
        console.print("languages: " + ", ".join(f"{lang} {n}" for lang, n in summary.langs.most_common(10)))
    for example in summary.first_errors:
        console.print(f"[yellow]{example}[/yellow]")


def register(app: typer.Typer) -> None:
    """Attach the serving commands to the `belong` app."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
    app.add_typer(db_app, name="db")
    app.command("replay")(replay)
