"""`belong replay`: stream a JSON Lines file into a running server, with a progress bar and a summary.

Usage:
    belong replay FILE.jsonl --url http://127.0.0.1:8000 --key KEY [--rate N] [--community ID] [--thread-size N]
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from belonging_cli.common import err
from serving.labels import TAGS

if TYPE_CHECKING:
    from belonging_cli.replay import Summary


def replay_command(
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

    from belonging_cli.replay import replay

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
                replay(
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


def print_summary(summary: Summary) -> None:
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
