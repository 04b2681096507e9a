"""`belong score`: tag a JSON Lines file with a bundle (serving stack only, no torch).

Usage: belong score --bundle models/default --input in.jsonl --output out.jsonl
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from belonging_cli.common import fail

BATCH = 256


def score(
    bundle: Annotated[Path, typer.Option(help="Bundle folder.")],
    input_path: Annotated[Path, typer.Option("--input", help="JSON Lines with at least a `text` field.")],
    output: Annotated[Path, typer.Option(help="JSON Lines: input fields plus `scores`, `tags` and `lang`.")],
) -> None:
    """Score every line; a line without usable text gets an `error` field and the rest go on.

    A string `lang` field is taken as the language hint; otherwise the language is detected.
    """
    from serving.engine.bundle import BundleError
    from serving.engine.tagger import Tagger

    try:
        tagger = Tagger.load(bundle)
    except BundleError as exc:
        raise fail(str(exc)) from exc
    scored = failed = 0
    with open(input_path, "rb") as source, open(output, "w", encoding="utf-8") as sink:
        pending: list[dict[str, Any]] = []

        def flush() -> None:
            usable = [r for r in pending if "error" not in r]
            hints = [r["lang"] if isinstance(r.get("lang"), str) and r["lang"].strip() else None for r in usable]
            for record, result in zip(usable, tagger.score([r["text"] for r in usable], hints), strict=True):
                record["scores"], record["tags"], record["lang"] = result.scores, result.tags, result.lang
            for record in pending:
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            pending.clear()

        for number, raw in enumerate(source, start=1):
            record, problem = parse_line(raw, number)
            if problem:
                failed += 1
                record["error"] = problem
            else:
                scored += 1
            pending.append(record)
            if len(pending) >= BATCH:
                flush()
        flush()
    typer.echo(f"{scored} lines scored, {failed} with errors, written to {output}")


def parse_line(raw: bytes, number: int) -> tuple[dict[str, Any], str | None]:
    """(record, problem). A broken line keeps what can be kept, so output stays one line per input."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return {"line": number}, f"line {number}: invalid UTF-8 at byte {exc.start}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return {"line": number, "raw": line.rstrip("\n")}, f"line {number}: invalid JSON: {exc.msg}"
    if not isinstance(record, dict):
        return {"line": number, "raw": record}, f"line {number}: expected a JSON object"
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        return record, f"line {number}: missing or empty `text`"
    return record, None
