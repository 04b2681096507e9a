"""`belong serve`: the scoring API and the moderator pages. Never imports torch or training.

Usage:
    belong serve --bundle models/default [--host 127.0.0.1] [--port 8000] [--database-url URL] [--issue-key]
        [--workers N]

`--workers N` starts N server processes sharing one port (uvicorn's workers), each with its own
copy of the model and cpu_count / N cores for it (BELONG_THREADS) unless told otherwise. The
database is migrated once, before they start; SQLite stays safe across processes (WAL, busy
timeout). Each process keeps its own /metrics and its own rate-limit counters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from belonging_cli.common import DatabaseUrl, err, fail, load_settings
from belonging_cli.keys_cmds import issue_key


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
    issue_key_: Annotated[
        bool, typer.Option("--issue-key", help="Create a key with all scopes and print it first.")
    ] = False,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request.")] = True,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, max=64, help="Server processes sharing the port, each with its own model."),
    ] = 1,
) -> None:
    """Serve the scoring API (OpenAPI at /docs)."""
    import uvicorn

    from serving.api.app import create_app
    from serving.engine.bundle import BundleError
    from serving.labels import SCOPES

    settings = load_settings(
        bundle=bundle,
        host=host,
        port=port,
        database_url=database_url,
        auth_disabled=True if no_auth else None,
    )
    if issue_key_:
        token = issue_key(settings, "local", SCOPES)
        err.print(f"API key for local use (scopes {', '.join(SCOPES)}), shown once:\n[bold]{token}[/bold]")
    if workers > 1:
        _serve_workers(settings, workers, access_log)
        return
    try:
        app = create_app(settings)
    except (BundleError, ValueError) as exc:
        raise fail(f"cannot serve: {exc}", 1) from exc
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


def _serve_workers(settings: Any, workers: int, access_log: bool) -> None:
    """uvicorn workers: each process builds the app from BELONG_* variables (`worker_app`), so the
    command line's options travel to them there."""
    import uvicorn

    from serving.engine.bundle import BundleError, load_bundle
    from serving.storage.db import make_engine, upgrade

    try:
        load_bundle(settings.bundle)  # a bad bundle stops here, not N times in the workers
    except BundleError as exc:
        raise fail(f"cannot serve: {exc}", 1) from exc
    if settings.migrate_on_start:
        engine = make_engine(settings.database_url)
        upgrade(engine)  # once: N processes migrating the same database at once would race
        engine.dispose()
    env = {
        "BELONG_BUNDLE": str(settings.bundle),
        "BELONG_HOST": settings.host,
        "BELONG_PORT": str(settings.port),
        "BELONG_DATABASE_URL": settings.database_url,
        "BELONG_AUTH_DISABLED": str(settings.auth_disabled).lower(),
        "BELONG_AUTO_MIGRATE": "false",
    }
    if "BELONG_THREADS" not in os.environ:
        env["BELONG_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))  # the cores, shared
    os.environ.update(env)
    if settings.auth_disabled:
        err.print(f"[yellow]API keys are OFF: only for local use on {settings.host}[/yellow]")
    uvicorn.run(
        "belonging_cli.serve_cmds:worker_app",
        factory=True,
        workers=workers,
        host=settings.host,
        port=settings.port,
        access_log=access_log,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


def worker_app() -> Any:
    """The app of one `--workers` process, from the BELONG_* variables `serve` set."""
    from serving.api.app import create_app

    return create_app(load_settings())
