"""`belong feedback`: moderators' reviews as training rows. Never imports torch or training.

Usage:
    belong feedback export --out feedback.jsonl [--since 2025-02-01] [--database-url URL]
then
    belong train --data seeds --data feedback.jsonl --out models/NAME
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from belonging_cli.common import DatabaseUrl, load_settings, store

app = typer.Typer(help="Moderators' reviews as training data.", no_args_is_help=True)


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
        raise typer.BadParameter(
            f"expected YYYY-MM-DD or an RFC 3339 date-time, got {value!r}", param_hint="--since"
        ) from exc


@app.command("export")
def feedback_export(
    out: Annotated[Path, typer.Option("--out", help="JSON Lines to write (seed schema plus provenance).")],
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only comments reviewed at or after this date (UTC): YYYY-MM-DD or RFC 3339."),
    ] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Write moderator-reviewed comments as training rows: `belong train --data seeds --data OUT`."""
    from serving.moderation.feedback import write_feedback

    start = parse_since(since)
    with store(load_settings(database_url=database_url)) as sessions, sessions() as db:
        n = write_feedback(db, out, start)
    when = f" reviewed since {start:%Y-%m-%d %H:%M} UTC" if start else ""
    typer.echo(f"{n} reviewed comment(s){when} written to {out}")
    if n == 0:
        typer.echo("nothing reviewed yet: confirm, reject or add tags on the moderator pages first", err=True)
