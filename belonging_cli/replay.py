"""Replay a JSON Lines file of comments into a running server and tally what came back
(the client behind `belong replay`, see replay_cmds.py).

Usage:
    summary = asyncio.run(replay(Path("tweets.jsonl"), url="http://127.0.0.1:8000", key="blg_...",
                                 rate=200, on_progress=lambda done, total: ...))

Each line is a JSON object; the fields /v1/score knows (id, text, thread_id, community_id,
author_id, parent_id, created_at, lang) are kept and any others dropped, so corpora with extra
columns replay as they are. Lines are checked locally with the server's own schema, sent in
batches to /v1/score by a few concurrent workers, and paced to `rate` comments per second.

Why /v1/score and not /v1/stream: httpx (like most HTTP/1.1 clients) sends the whole request
before it reads the response, so streaming a large file through one /v1/stream request would fill
both socket buffers and stall. Batches keep memory flat, retry cleanly and pace exactly.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from serving.api.errors import describe_errors, summarize
from serving.api.schemas import MAX_COMMENTS, CommentIn

log = logging.getLogger(__name__)
KNOWN_FIELDS = set(CommentIn.model_fields)
RETRY_STATUSES = {429, 502, 503, 504}


@dataclass
class Summary:
    lines: int = 0
    scored: int = 0
    errors: int = 0
    tags: Counter[str] = field(default_factory=Counter)
    langs: Counter[str] = field(default_factory=Counter)
    truncated: int = 0
    error_reasons: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)  # a few examples, with line numbers
    seconds: float = 0.0

    def error(self, line: int, reason: str, detail: str, count: int = 1) -> None:
        self.errors += count
        self.error_reasons[reason] += count
        if len(self.first_errors) < 5:
            self.first_errors.append(f"line {line}: {detail}")

    @property
    def rate(self) -> float:
        return self.scored / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Batch:
    lines: list[int]
    comments: list[dict[str, Any]]


def read_comments(
    path: Path, summary: Summary, community_id: str | None = None, thread_size: int | None = None
) -> Iterator[tuple[int, dict]]:
    """(line number, comment) for each valid line; invalid ones are tallied in the summary.

    `thread_size` groups comments that carry no thread_id into threads of that many, in file order,
    each later one replying to the thread's first: public corpora have no threads, and a demo of
    flags, thread review and newcomer reception needs them.
    """
    grouped = 0
    opener = ""
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            summary.lines += 1
            try:
                payload = json.loads(raw)
            except json.JSONDecodeError as exc:
                summary.error(number, "invalid JSON", f"invalid JSON: {exc.msg}")
                continue
            if not isinstance(payload, dict):
                summary.error(number, "not an object", "expected a JSON object")
                continue
            comment = {k: v for k, v in payload.items() if k in KNOWN_FIELDS and v is not None}
            if community_id is not None:
                comment["community_id"] = community_id
            try:
                CommentIn.model_validate(comment)
            except ValidationError as exc:
                described = describe_errors([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()], comment)
                item = (
                    f"id {json.dumps(comment['id'], ensure_ascii=False)}: "
                    if isinstance(comment.get("id"), str)
                    else ""
                )
                summary.error(number, "invalid comment", item + summarize(described))
                continue
            if thread_size and "thread_id" not in comment:
                position = grouped % thread_size
                comment["thread_id"] = f"replay-{grouped // thread_size + 1}"
                if position == 0:
                    opener = comment["id"]
                elif "parent_id" not in comment:
                    comment["parent_id"] = opener
                grouped += 1
            yield number, comment


def batches(rows: Iterator[tuple[int, dict]], size: int) -> Iterator[Batch]:
    lines: list[int] = []
    comments: list[dict] = []
    seen: set[tuple[Any, Any]] = set()
    for number, comment in rows:
        key = (comment.get("community_id"), comment["id"])
        if key in seen:  # a batch may not repeat an id: start a new one
            yield Batch(lines, comments)
            lines, comments, seen = [], [], set()
        lines.append(number)
        comments.append(comment)
        seen.add(key)
        if len(comments) >= size:
            yield Batch(lines, comments)
            lines, comments, seen = [], [], set()
    if comments:
        yield Batch(lines, comments)


class Pacer:
    """Start at most `rate` comments per second, on average (None: no limit)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.sent = 0
        self.lock = asyncio.Lock()

    async def wait(self, n: int) -> None:
        if not self.rate:
            return
        async with self.lock:
            due = self.start + self.sent / self.rate
            self.sent += n
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def send_batch(client: httpx.AsyncClient, batch: Batch, store: bool, summary: Summary, retries: int = 5) -> None:
    for attempt in range(retries + 1):
        try:
            response = await client.post("/v1/score", json={"comments": batch.comments, "store": store})
        except httpx.TransportError as exc:
            if attempt == retries:
                summary.error(batch.lines[0], "connection", f"{type(exc).__name__}: {exc}", len(batch.lines))
                return
            await asyncio.sleep(0.2 * 2**attempt)
            continue
        if response.status_code in RETRY_STATUSES and attempt < retries:
            await asyncio.sleep(float(response.headers.get("retry-after", 0.2 * 2**attempt)))
            continue
        break
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text[:200]
        summary.error(
            batch.lines[0],
            f"HTTP {response.status_code}",
            f"HTTP {response.status_code}: {detail}",
            len(batch.lines),
        )
        return
    for item in response.json()["data"]:
        summary.scored += 1
        summary.tags.update(item["tags"])
        summary.langs[item["lang"]] += 1
        summary.truncated += item["truncated"]


async def replay(
    path: Path,
    *,
    url: str,
    key: str,
    rate: float | None = None,
    batch_size: int = 32,
    concurrency: int = 4,
    store: bool = True,
    community_id: str | None = None,
    thread_size: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Summary:
    """Send every valid comment of `path`; `on_progress(done_lines, total_lines)` after each batch."""
    if not 1 <= batch_size <= MAX_COMMENTS:
        raise ValueError(f"batch_size must be 1 to {MAX_COMMENTS}, got {batch_size}")
    total = sum(1 for line in path.open(encoding="utf-8") if line.strip())
    summary = Summary()
    pacer = Pacer(rate)
    queue: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=concurrency * 2)
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {key}"}
    timeout = httpx.Timeout(60.0, connect=10.0)

    def progress() -> None:
        if on_progress is not None:
            on_progress(summary.scored + summary.errors, total)

    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=timeout, transport=transport) as client:

        async def worker() -> None:
            while (batch := await queue.get()) is not None:
                await pacer.wait(len(batch.comments))
                await send_batch(client, batch, store, summary)
                progress()

        workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
        try:
            for batch in batches(read_comments(path, summary, community_id, thread_size), batch_size):
                await queue.put(batch)
                progress()
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
    summary.seconds = time.monotonic() - started
    progress()
    return summary
