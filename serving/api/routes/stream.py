"""POST /v1/stream: NDJSON in, NDJSON out, one output line per input line, in order.

Output starts as soon as the first line is scored, while the request is still arriving. Up to
`stream_window` lines are scored ahead (so they share batches) while earlier answers are written.
A bad line gets an error line with its line number and the stream goes on. Blank lines are skipped
(they are not records); line numbers count every physical line, starting at 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from serving.api.auth import ScoreKey
from serving.api.deps import RuntimeDep, ScoringDep
from serving.api.errors import describe_errors, summarize
from serving.api.schemas import CommentIn, StreamError, StreamErrorBody, StreamScored
from serving.api.scoring import ScoringService
from serving.engine.batching import BatcherStopped, Overloaded

log = logging.getLogger(__name__)
router = APIRouter(tags=["scoring"])


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


def _error(number: int, status: int, detail: str, item: str | None = None) -> bytes:
    line = StreamError(line=number, id=item, error=StreamErrorBody(status=status, detail=f"line {number}: {detail}"))
    return line.model_dump_json().encode() + b"\n"


async def score_line(line: Line, service: ScoringService, *, store: bool, max_bytes: int) -> bytes:
    if line.raw is None:
        return _error(line.number, 413, f"at most {max_bytes} bytes per line")
    try:
        payload = json.loads(line.raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        return _error(line.number, 400, f"invalid JSON{where}: {reason}")
    if not isinstance(payload, dict):
        return _error(line.number, 422, f"expected a JSON object (one comment per line), got {type(payload).__name__}")
    item = payload.get("id") if isinstance(payload.get("id"), str) else None
    try:
        comment = CommentIn.model_validate(payload)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        described = describe_errors(errors, payload)
        for entry in described:
            entry.pop("item", None)  # the id is given on the error line itself
        return _error(line.number, 422, summarize(described), item)
    try:
        (scored,) = await service.score([comment], store=store)
    except (Overloaded, BatcherStopped) as exc:
        return _error(line.number, 503, str(exc), item)
    except Exception:
        log.exception("scoring line %d of a stream failed", line.number)
        return _error(line.number, 500, "internal server error", item)
    return StreamScored(line=line.number, **scored.model_dump()).model_dump_json().encode() + b"\n"


async def score_stream(
    request: Request, service: ScoringService, *, store: bool, max_bytes: int, window: int
) -> AsyncIterator[bytes]:
    pending: asyncio.Queue[asyncio.Task[bytes] | None] = asyncio.Queue(maxsize=window)

    async def read() -> None:
        try:
            async for line in split_lines(request.stream(), max_bytes):
                task = asyncio.ensure_future(score_line(line, service, store=store, max_bytes=max_bytes))
                await pending.put(task)
        finally:
            await pending.put(None)

    reader = asyncio.ensure_future(read())
    try:
        while (task := await pending.get()) is not None:
            yield await task
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
    _: ScoreKey,
    store: Annotated[bool, Query(description="false: score only, persist nothing.")] = True,
) -> DuplexStreamingResponse:
    service.check_ready()
    settings = runtime.settings
    return DuplexStreamingResponse(
        score_stream(request, service, store=store, max_bytes=settings.max_line_bytes, window=settings.stream_window),
        media_type="application/x-ndjson",
    )
