"""Client mistakes become exact 4xx answers naming the field and item; anything else a logged 500.

- `validation_handler`: RequestValidationError -> 400 (invalid JSON), 413 (too many comments) or
  422, with `detail` like `comments[3].text (id "c4"): String should have at least 1 character`
  and a machine-readable `errors` list.
- `BodyLimitMiddleware`: refuses bodies over the limit with 413 before anything parses them.
- `CatchAllMiddleware`: an unexpected exception is logged with its traceback and answered
  `500 {"detail": "internal server error"}`, never with internals.
- `model_unavailable`: the runtime's ModelUnavailable (model loading or failed) -> 503 with
  Retry-After, so the runtime itself knows nothing about HTTP.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.api.schemas import MAX_COMMENTS

log = logging.getLogger(__name__)
MAX_LISTED_ERRORS = 5


def field_path(loc: Sequence[Any]) -> str:
    """("comments", 3, "text") -> "comments[3].text"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _item_id(body: Any, loc: Sequence[Any]) -> str | None:
    """The `id` of the list item an error sits in, when the body has one."""
    node = body
    for depth, part in enumerate(loc):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
        if isinstance(part, int) and depth + 1 < len(loc):
            item = node.get("id") if isinstance(node, dict) else None
            return item if isinstance(item, str) else None
    return None


def _clean_message(msg: str) -> str:
    return msg.removeprefix("Value error, ")


def describe_errors(errors: Iterable[dict[str, Any]], body: Any = None) -> list[dict[str, Any]]:
    """Errors with a readable `field` (and the item `id`, for list items)."""
    described = []
    for err in errors:
        loc = list(err.get("loc", ()))
        source = loc[0] if loc and loc[0] in ("body", "query", "path", "header") else None
        inner = loc[1:] if source else loc
        entry: dict[str, Any] = {
            "loc": loc,
            "field": field_path(inner) or "body",
            "msg": _clean_message(str(err.get("msg", ""))),
            "type": err.get("type", ""),
        }
        if source in ("query", "path", "header"):
            entry["field"] = f"{source} parameter {entry['field']}"
        item = _item_id(body, inner) if source == "body" else None
        if item is not None:
            entry["item"] = item
        described.append(entry)
    return described


def summarize(described: list[dict[str, Any]]) -> str:
    parts = []
    for e in described[:MAX_LISTED_ERRORS]:
        label = e["field"] + (f" (id {json.dumps(e['item'], ensure_ascii=False)})" if "item" in e else "")
        parts.append(f"{label}: {e['msg']}")
    more = len(described) - MAX_LISTED_ERRORS
    if more > 0:
        parts.append(f"and {more} more error(s)")
    return "; ".join(parts)


def classify(errors: Sequence[dict[str, Any]], body: Any) -> tuple[int, str | None]:
    """The status for a set of validation errors, and a replacement detail when one reads better."""
    for err in errors:
        loc = tuple(err.get("loc", ()))
        kind = err.get("type")
        if kind == "json_invalid":
            position = loc[1] if len(loc) > 1 else "?"
            reason = (err.get("ctx") or {}).get("error", "malformed JSON")
            return 400, f"body: invalid JSON at character {position}: {reason}"
        if kind == "too_long" and loc == ("body", "comments"):
            sent = len(body["comments"]) if isinstance(body, dict) and isinstance(body.get("comments"), list) else "?"
            return 413, f"comments: at most {MAX_COMMENTS} comments per request, got {sent}"
        if loc == ("body",) and kind in ("model_attributes_type", "dict_type"):
            return 422, "body: expected a JSON object sent with Content-Type: application/json"
        if loc == ("body",) and kind == "missing":
            return 422, "body: a JSON object is required"
    return 422, None


def error_response(status: int, detail: str, errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    content: dict[str, Any] = {"detail": detail}
    if errors:
        content["errors"] = errors
    return JSONResponse(content, status_code=status)


async def validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    body = getattr(exc, "body", None)
    status, detail = classify(errors, body)
    described = describe_errors(errors, body)
    return error_response(status, detail or summarize(described), described)


async def model_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Installed for serving.runtime.ModelUnavailable by create_app."""
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "1"})


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with a JSON 413, reading at most that much.

    Paths in `exempt` (the NDJSON stream, limited per line instead) pass through untouched.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, exempt: Iterable[str] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD") or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await error_response(400, "header Content-Length: not an integer")(scope, receive, send)
                    return
        if declared is not None and declared > self.max_bytes:
            await self._too_large(declared, scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(None, scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, declared: int | None, scope: Scope, receive: Receive, send: Send) -> None:
        size = f"{declared} bytes" if declared is not None else "larger than that"
        detail = f"body: at most {self.max_bytes} bytes per request, got {size}"
        await error_response(413, detail)(scope, receive, send)


class CatchAllMiddleware:
    """Log unexpected exceptions with their traceback; answer a generic 500 if nothing was sent yet."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await error_response(500, "internal server error")(scope, receive, send)
