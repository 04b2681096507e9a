"""One error shape for every answer that is not a success, and the handlers that produce it.

Every error body, from any route, any status and any layer (validation, body parsing, auth, rate
limits, overload, storage faults, unknown routes, the catch-all 500) is

    {"detail": "comments[3].text (id \"c4\"): String should have at least 1 character",
     "errors": [{"loc": ["body", "comments", 3, "text"], "field": "comments[3].text",
                 "msg": "String should have at least 1 character", "type": "string_too_short",
                 "item": "c4"}]}

`detail` is one readable sentence; `errors` is never empty: one entry per problem, with `type` for
machines (`not_found`, `rate_limited`, `overloaded`, `store_unavailable`, ... or pydantic's types)
and `loc`/`field` when the problem sits in a field. `item` (the id of the list item) appears only for
list items. The `Error` schema in /openapi.json describes it; `install_errors` puts it on every
operation's 4xx/5xx answers, so routes other modules add later are covered too.

Bodies are rendered so that nothing a client sent can make rendering fail: a string the client
sent that cannot be encoded as UTF-8 (a lone surrogate from a JSON `\\ud800` escape) is written with
JSON escapes instead of crashing the answer.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.api.schemas import MAX_COMMENTS
from serving.storage.db import StoreUnavailable
from serving.storage.writer import fault_reason, is_store_fault

log = logging.getLogger(__name__)
MAX_LISTED_ERRORS = 5
STORE_RETRY_SECONDS = 2

# The `type` of an error that is not about one field, by status.
TYPE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


# --- the shape ---


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(
        description="Where: ['body', 'comments', 3, 'text'], ['query', 'offset']; [] if nowhere."
    )
    field: str = Field(description="`loc` as people write it: comments[3].text, query parameter offset; '' if nowhere.")
    msg: str
    type: str = Field(description="Machine-readable kind: pydantic's error types, or not_found, rate_limited, ...")
    item: str | None = Field(default=None, description="The `id` of the list item the error sits in, if any.")


class Error(BaseModel):
    """Every error answer of this API."""

    detail: str = Field(description="One readable sentence naming what is wrong and where.")
    errors: list[ErrorItem] = Field(min_length=1)


def render_json(content: Any) -> bytes:
    """JSON as UTF-8; falls back to \\u escapes when a string holds something UTF-8 cannot encode."""
    try:
        return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


class SafeJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return render_json(content)


def error_body(status: int, detail: str, errors: list[dict[str, Any]] | None = None, kind: str | None = None) -> dict:
    if not errors:
        errors = [{"loc": [], "field": "", "msg": detail, "type": kind or TYPE_BY_STATUS.get(status, "error")}]
    return {"detail": detail, "errors": errors}


def error_response(
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    *,
    kind: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return SafeJSONResponse(error_body(status, detail, errors, kind), status_code=status, headers=headers)


class ApiError(StarletteHTTPException):
    """An HTTPException with an error `type`, and a field or a ready `errors` list:
    `raise ApiError(409, "...", kind="conflict", loc=("body", "comments", 0, "id"))`."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        kind: str | None = None,
        loc: Sequence[str | int] = (),
        errors: list[dict[str, Any]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(status, detail, headers=dict(headers) if headers else None)
        self.kind = kind
        self.loc = list(loc)
        self.errors = errors


# --- validation errors ---


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


def _json_loc(loc: Iterable[Any]) -> list[str | int]:
    return [part if isinstance(part, int) and not isinstance(part, bool) else str(part) for part in loc]


def describe_errors(errors: Iterable[Mapping[str, Any]], body: Any = None) -> list[dict[str, Any]]:
    """Errors with a readable `field` (and the item `id`, for list items)."""
    described = []
    for err in errors:
        loc = _json_loc(err.get("loc", ()))
        source = loc[0] if loc and loc[0] in ("body", "query", "path", "header") else None
        inner = loc[1:] if source else loc
        entry: dict[str, Any] = {
            "loc": loc,
            "field": field_path(inner) or "body",
            "msg": _clean_message(str(err.get("msg", ""))),
            "type": str(err.get("type", "")),
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
        label = e["field"] + (f" (id {json.dumps(e['item'])})" if "item" in e else "")
        parts.append(f"{label}: {e['msg']}" if label else e["msg"])
    more = len(described) - MAX_LISTED_ERRORS
    if more > 0:
        parts.append(f"and {more} more error(s)")
    return "; ".join(parts)


def classify(errors: Sequence[Mapping[str, Any]], body: Any) -> tuple[int, str | None]:
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


# --- handlers ---


async def validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    body = getattr(exc, "body", None)
    status, detail = classify(errors, body)
    described = describe_errors(errors, body)
    return error_response(status, detail or summarize(described), described)


def _body_parse_detail(exc: BaseException) -> str:
    """FastAPI answers 'There was an error parsing the body' for JSON it cannot load; say why."""
    cause = exc.__cause__
    if isinstance(cause, RecursionError):
        return "body: invalid JSON: nested too deeply"
    if isinstance(cause, ValueError):  # e.g. an integer of more than 4300 digits
        return f"body: invalid JSON: {cause}"
    if isinstance(cause, UnicodeDecodeError):
        return "body: invalid JSON: not UTF-8"
    return "body: could not be parsed"


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, default=str)
    kind = getattr(exc, "kind", None)
    loc = getattr(exc, "loc", [])
    if exc.status_code == 400 and detail == "There was an error parsing the body":
        detail, kind = _body_parse_detail(exc), "json_invalid"
    errors = getattr(exc, "errors", None)
    if loc and not errors:
        field = field_path(loc[1:]) if loc[0] == "body" else f"{loc[0]} parameter {field_path(loc[1:])}"
        errors = [{"loc": _json_loc(loc), "field": field, "msg": detail, "type": kind or "invalid"}]
    return error_response(exc.status_code, detail, errors, kind=kind, headers=exc.headers)


async def model_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Installed for serving.runtime.ModelUnavailable by create_app."""
    return error_response(503, str(exc), kind="model_unavailable", headers={"Retry-After": "1"})


async def store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The database cannot be read or written right now: 503, retry later; nothing was half-stored."""
    if not isinstance(exc, StoreUnavailable):
        log.warning("store fault on %s %s: %s", request.method, request.url.path, exc)
    reason = str(exc) if isinstance(exc, StoreUnavailable) else fault_reason(exc)
    retry = getattr(exc, "retry_after", STORE_RETRY_SECONDS)
    return error_response(
        503,
        f"the store is unavailable: {reason}; retry shortly",
        kind="store_unavailable",
        headers={"Retry-After": str(max(1, math.ceil(retry)))},
    )


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    if is_store_fault(exc):
        return await store_unavailable(request, exc)
    log.error("database error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal server error")


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
    """Log unexpected exceptions with their traceback; answer a generic 500 if nothing was sent yet.

    A store fault that escaped the handlers (raised while a dependency closed its session) is a
    503 with Retry-After, as anywhere else.
    """

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
        except Exception as exc:
            if isinstance(exc, StoreUnavailable) or is_store_fault(exc):
                log.warning("store fault on %s %s: %s", scope.get("method"), scope.get("path"), exc)
                if not started:
                    request = Request(scope)
                    await (await store_unavailable(request, exc))(scope, receive, send)
                return
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await error_response(500, "internal server error")(scope, receive, send)


# --- OpenAPI ---

ERROR_REF = {"$ref": "#/components/schemas/Error"}
STATUS_TEXT = {
    400: "Invalid JSON, or a body that cannot be parsed.",
    401: "Missing, malformed, unknown or revoked API key.",
    403: "The key lacks the route's scope.",
    409: "A comment id already stored with a different text.",
    413: "Too many comments, or a body over the size limit.",
    422: "A parameter or field is invalid; `detail` names it (and a comment's id).",
    429: "The key's rate limit is exceeded: see Retry-After and the RateLimit-* headers.",
    500: "Unexpected server error (logged; never caused by the request's content).",
    503: "Model loading, server overloaded, or the store unavailable: see Retry-After.",
}


def _document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    for path, operations in schema.get("paths", {}).items():
        for op in operations.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            codes = {int(c) for c in responses if c.isdigit() and int(c) >= 400}
            codes.add(500)
            if op.get("parameters") or op.get("requestBody"):
                codes.add(422)
            if op.get("requestBody"):
                codes.update((400, 413))
            if op.get("security"):
                codes.update((401, 403))
            if path.startswith("/v1/"):
                codes.update((429, 503))
            # A route answering in another envelope (the Perspective-compatible ones) names its schema.
            ref = {"$ref": op.pop("x-error-schema")} if "x-error-schema" in op else ERROR_REF
            for code in sorted(codes):
                entry = responses.setdefault(str(code), {})
                entry["description"] = entry.get("description") or STATUS_TEXT.get(code, "Error.")
                entry.setdefault("content", {})["application/json"] = {"schema": ref}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    components["Error"] = Error.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(components["Error"].pop("$defs", {}))
    return schema


def install_errors(app: FastAPI) -> None:
    """The handlers that give every error the shape above, and the OpenAPI schema that says so."""
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(StoreUnavailable, store_unavailable)
    # Database errors: a store fault (locked, read-only, gone, full) is a 503; anything else a bug.
    app.add_exception_handler(sa_exc.DBAPIError, database_error)
    app.add_exception_handler(sa_exc.TimeoutError, store_unavailable)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
                servers=app.servers,
            )
            app.openapi_schema = _document_errors(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
