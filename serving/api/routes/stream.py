"""POST /v1/stream: NDJSON in, NDJSON out, one output line per input line, in order.

Output starts as soon as the first line is scored, while the request is still arriving. Up to
`stream_window` lines are scored ahead (so they share batches) while earlier answers are written.
Blank lines are skipped (they are not records); line numbers count every physical line, from 1.

Nothing a line holds can end the response: each line is parsed, validated and scored on its own
and answered with its line number, either scored or as an error line
`{"line": n, "id": ..., "error": {"status": 4xx/5xx, "detail": ..., "errors": [...]}}` (the API's
error shape plus the status). The id is echoed only when it is a string that can be written back.

Duplicate ids (same community_id and id) within one stream: a later line with the same text is
answered with the earlier line's result (scored and stored once); with a different text it gets a
409 error line and nothing of it is stored. A stored comment's text never differs from the one its
scores belong to. Over the key's comment rate the stream slows down (lines wait) instead of failing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from serving.api.auth import RateLimiterDep, ScoreKey
from serving.api.deps import RuntimeDep, ScoringDep
from serving.api.errors import ApiError, describe_errors, error_body, render_json, summarize
from serving.api.schemas import CommentIn, ScoredComment, StreamScored
from serving.api.scoring import ScoringService, key_of
from serving.engine.batching import BatcherStopped, Overloaded
from serving.runtime import ModelUnavailable
from serving.storage.comments import Key
from serving.storage.db import StoreUnavailable
from serving.storage.writer import fault_reason, is_store_fault

log = logging.getLogger(__name__)
router = APIRouter(tags=["scoring"])
MAX_TRACKED_IDS = 100_000  # ids remembered per stream for the duplicate rule; the store checks the rest


@dataclass(frozen=True)
class Line:
    number: int
    raw: bytes | None  # None: the line was longer than the limit


async def split_lines(chunks: AsyncIterator[bytes], max_bytes: int) -> AsyncIterator[Line]:
    """Physical lines of an NDJSON body; an over-long line is dropped as it arrives, not buffered."""
    buffer = b""
    number = 0
    skipping = False  # inside an over-long line, discarding until its newline
    async for chunk in chunks:
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                if len(buffer) > max_bytes:
                    skipping, buffer = True, b""
                break
            raw, buffer = buffer[:newline], buffer[newline + 1 :]
            number += 1
            if skipping or len(raw) > max_bytes:
                skipping = False
                yield Line(number, None)
            elif raw.strip():
                yield Line(number, raw)
    if skipping:
        yield Line(number + 1, None)
    elif buffer.strip():
        yield Line(number + 1, buffer)


def _safe_id(value: object) -> str | None:
    """The line's id, to echo on its answer, only when it is a string that can be written back."""
    if not isinstance(value, str):
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


def _error(
    number: int,
    status: int,
    detail: str,
    item: str | None = None,
    errors: list[dict] | None = None,
    kind: str | None = None,
) -> bytes:
    """An error line: the API's error shape (detail, errors) plus the status, the line number and id."""
    body = error_body(status, f"line {number}: {detail}", errors, kind)
    return render_json({"line": number, "id": item, "error": {"status": status, **body}}) + b"\n"


def _scored(number: int, scored: ScoredComment) -> bytes:
    return render_json(StreamScored(line=number, **scored.model_dump()).model_dump()) + b"\n"


def parse_line(line: Line, max_bytes: int) -> CommentIn | bytes:
    """The line's comment, or its error line. Nothing in the line can raise out of here."""
    if line.raw is None:
        return _error(line.number, 413, f"at most {max_bytes} bytes per line", kind="too_large")
    try:
        payload = json.loads(line.raw)
    except json.JSONDecodeError as exc:
        return _error(line.number, 400, f"invalid JSON at character {exc.pos}: {exc.msg}", kind="json_invalid")
    except UnicodeDecodeError:
        return _error(line.number, 400, "invalid JSON: not UTF-8", kind="json_invalid")
    except RecursionError:
        return _error(line.number, 400, "invalid JSON: nested too deeply", kind="json_invalid")
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        return _error(line.number, 400, f"invalid JSON: {exc}", kind="json_invalid")
    if not isinstance(payload, dict):
        kind = type(payload).__name__
        return _error(line.number, 422, f"expected a JSON object (one comment per line), got {kind}", kind="dict_type")
    item = _safe_id(payload.get("id"))
    try:
        return CommentIn.model_validate(payload)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        described = describe_errors(errors, payload)
        for entry in described:
            entry.pop("item", None)  # the id is given on the error line itself
        return _error(line.number, 422, summarize(described), item, described)


def text_digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


@dataclass
class Seen:
    """An earlier line of this stream with the same (community_id, id)."""

    number: int
    digest: bytes
    task: asyncio.Future[tuple[ScoredComment | None, bytes]]


async def score_comment(
    number: int, comment: CommentIn, service: ScoringService, *, store: bool
) -> tuple[ScoredComment | None, bytes]:
    try:
        (scored,) = await service.score([comment], store=store, admitted=True)
    except ApiError as exc:
        detail = str(exc.detail)
        if exc.status_code == 409:
            detail = (
                f"id {json.dumps(comment.id)} is already stored with a different text; "
                "a stored comment's text cannot change: send an edited text under a new id"
            )
        return None, _error(number, exc.status_code, detail, comment.id, kind=exc.kind)
    except (Overloaded, BatcherStopped) as exc:
        return None, _error(number, 503, str(exc), comment.id, kind="overloaded")
    except ModelUnavailable as exc:
        return None, _error(number, 503, str(exc), comment.id, kind="model_unavailable")
    except Exception as exc:
        if isinstance(exc, StoreUnavailable) or is_store_fault(exc):
            reason = str(exc) if isinstance(exc, StoreUnavailable) else fault_reason(exc)
            return None, _error(
                number,
                503,
                f"the store is unavailable: {reason}; resend this line",
                comment.id,
                kind="store_unavailable",
            )
        log.exception("scoring line %d of a stream failed", number)
        return None, _error(number, 500, "internal server error", comment.id, kind="internal")
    return scored, _scored(number, scored)


async def repeat_line(
    number: int, comment: CommentIn, first: Seen, service: ScoringService, *, store: bool
) -> tuple[ScoredComment | None, bytes]:
    """A later line with the id and text of an earlier one: the earlier line's answer, scored once."""
    scored, _ = await first.task
    if scored is None:  # the earlier line failed (e.g. 503): this one gets its own try
        return await score_comment(number, comment, service, store=store)
    return scored, _scored(number, scored)


def done(answer: bytes) -> asyncio.Future[tuple[ScoredComment | None, bytes]]:
    future: asyncio.Future[tuple[ScoredComment | None, bytes]] = asyncio.get_running_loop().create_future()
    future.set_result((None, answer))
    return future


async def score_stream(
    request: Request,
    service: ScoringService,
    *,
    store: bool,
    max_bytes: int,
    window: int,
    pace: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes]:
    pending: asyncio.Queue[asyncio.Future[tuple[ScoredComment | None, bytes]] | None] = asyncio.Queue(maxsize=window)
    seen: dict[Key, Seen] = {}

    def schedule(line: Line) -> asyncio.Future[tuple[ScoredComment | None, bytes]]:
        try:
            parsed = parse_line(line, max_bytes)
        except Exception:  # never expected; a bug in one line must not end the stream either
            log.exception("parsing line %d of a stream failed", line.number)
            return done(_error(line.number, 500, "internal server error", kind="internal"))
        if isinstance(parsed, bytes):
            return done(parsed)
        key, digest = key_of(parsed), text_digest(parsed.text)
        first = seen.get(key)
        if first is None:
            task = asyncio.ensure_future(score_comment(line.number, parsed, service, store=store))
            if len(seen) < MAX_TRACKED_IDS:
                seen[key] = Seen(line.number, digest, task)
            return task
        if first.digest != digest:
            return done(
                _error(
                    line.number,
                    409,
                    f"id {json.dumps(parsed.id)} was sent on line {first.number} with a different text; "
                    "a comment's text cannot change: send an edited text under a new id",
                    parsed.id,
                    kind="conflict",
                )
            )
        return asyncio.ensure_future(repeat_line(line.number, parsed, first, service, store=store))

    async def read() -> None:
        try:
            async for line in split_lines(request.stream(), max_bytes):
                if pace is not None and line.raw is not None:
                    await pace()
                await pending.put(schedule(line))
        finally:
            await pending.put(None)

    reader = asyncio.ensure_future(read())
    try:
        while (task := await pending.get()) is not None:
            try:
                _scored_comment, answer = await task
            except asyncio.CancelledError:
                raise
            except Exception:  # never expected: score_comment answers every failure itself
                log.exception("a stream line failed")
                answer = _error(0, 500, "internal server error", kind="internal")
            yield answer
        await reader  # surface a disconnect
    except ClientDisconnect:
        log.info("stream client went away")
    finally:
        reader.cancel()
        while not pending.empty():
            leftover = pending.get_nowait()
            if leftover is not None:
                leftover.cancel()


class DuplexStreamingResponse(StreamingResponse):
    """A StreamingResponse that never calls `receive` itself.

    Starlette's version listens for a disconnect by reading `receive`, which would steal the
    request body this route is still reading; here the body reader notices the disconnect.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.stream_response(send)
        except OSError as exc:
            raise ClientDisconnect() from exc


NDJSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "One comment object (as in /v1/score) per line."}
            }
        },
    }
}


@router.post(
    "/v1/stream",
    response_class=DuplexStreamingResponse,
    openapi_extra=NDJSON_BODY,
    responses={
        200: {
            "content": {"application/x-ndjson": {}},
            "description": "One line per input line: a scored comment with `line`, or "
            '`{"line": n, "id": ..., "error": {"status": 4xx, "detail": ...}}`.',
        },
        401: {},
        403: {},
        503: {},
    },
)
async def stream(
    request: Request,
    runtime: RuntimeDep,
    service: ScoringDep,
    principal: ScoreKey,
    limiter: RateLimiterDep,
    store: Annotated[bool, Query(description="false: score only, persist nothing.")] = True,
) -> DuplexStreamingResponse:
    service.check_ready()
    service.guard.check()  # an overloaded server refuses new streams (503); open ones slow down
    settings = runtime.settings

    async def pace() -> None:  # over the key's comment rate, the stream slows down instead of failing
        await limiter.pace_comments(principal, 1)

    return DuplexStreamingResponse(
        score_stream(
            request,
            service,
            store=store,
            max_bytes=settings.max_line_bytes,
            window=settings.stream_window,
            pace=pace if limiter.enabled else None,
        ),
        media_type="application/x-ndjson",
    )
