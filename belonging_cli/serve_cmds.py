"""`belong serve`: the scoring API and the moderator pages. Never imports torch or training.

Usage:
    belong serve --bundle models/default [--host 127.0.0.1] [--port 8000] [--database-url URL] [--issue-key]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
