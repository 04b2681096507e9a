"""Errors in Google's JSON envelope, for every failure of a Perspective-compatible route.

    {"error": {"code": 400, "message": "Comment must be non-empty.", "status": "INVALID_ARGUMENT",
               "details": [{"@type": "type.googleapis.com/google.commentanalyzer.v1alpha1.Error",
                            "errorType": "COMMENT_EMPTY"}]}}

`GoogleErrorRoute` is the routes' APIRoute class: it turns this package's `PerspectiveError`, body
validation errors, HTTPExceptions raised by shared dependencies (401/403/429 with Retry-After from
a rate limiter) and the runtime's ModelUnavailable into that envelope, so a Perspective client
never sees belonging's own `{"detail": ...}` shape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException  # FastAPI's and serving.api's ApiError both derive from it

from serving.engine.batching import BatcherStopped, Overloaded
from serving.runtime import ModelUnavailable

log = logging.getLogger(__name__)

ERROR_TYPE = "type.googleapis.com/google.commentanalyzer.v1alpha1.Error"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
DOMAIN = "belonging"
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class GoogleErrorStatus(BaseModel):
    code: int
    message: str
    status: str
    details: list[dict[str, Any]] = Field(default_factory=list)


class GoogleError(BaseModel):
    """Google's error envelope, as every failure of these routes is answered (and documented)."""

    error: GoogleErrorStatus


# Tells the app's OpenAPI error documenter (serving/api/errors.py) to describe these routes' errors
# with Google's envelope instead of the API's own shape.
GOOGLE_ERRORS_OPENAPI = {"x-error-schema": "#/components/schemas/GoogleError"}


class PerspectiveError(Exception):
    """An error answered in Google's envelope; `error_type` fills the commentanalyzer Error detail."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        error_type: str | None = None,
        extra: dict[str, Any] | None = None,
        info_reason: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.error_type = error_type
        self.extra = extra or {}
        self.info_reason = info_reason
        self.headers = headers

    def body(self) -> dict[str, Any]:
        details: list[dict[str, Any]] = []
        if self.error_type:
            details.append({"@type": ERROR_TYPE, "errorType": self.error_type, **self.extra})
        if self.info_reason:
            details.append({"@type": ERROR_INFO, "reason": self.info_reason, "domain": DOMAIN})
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": STATUS_NAMES.get(self.code, "UNKNOWN"),
        }
        if details:
            error["details"] = details
        return {"error": error}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.code, headers=self.headers)


def invalid(message: str, error_type: str = "INVALID_REQUEST", **extra: Any) -> PerspectiveError:
    return PerspectiveError(400, message, error_type=error_type, extra=extra)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p != "body"]
    out = ""
    for part in parts:
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out or "body"


def from_validation(exc: RequestValidationError) -> PerspectiveError:
    """The first body error, worded like Google's JSON parser where the meaning is the same."""
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    kind, loc = first.get("type", ""), tuple(first.get("loc", ()))
    if kind == "json_invalid":
        return invalid(f"Invalid JSON payload received. {first.get('ctx', {}).get('error', 'malformed JSON')}")
    if kind == "extra_forbidden":
        return invalid(
            f'Invalid JSON payload received. Unknown name "{loc[-1]}" at "{_field(loc[:-1])}": Cannot find field.'
        )
    if loc == ("body",) and kind in ("missing", "model_attributes_type", "dict_type"):
        return invalid("Invalid JSON payload received: expected a JSON object sent as application/json.")
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return invalid(f"Invalid value at '{_field(loc)}': {message}{more}")


def from_http(exc: HTTPException) -> PerspectiveError:
    """Shared dependencies speak HTTPException: keep the status, message and Retry-After."""
    headers = dict(exc.headers or {})
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if exc.status_code == 429:
        return PerspectiveError(
            429,
            f"Quota exceeded: {message}",
            info_reason="RATE_LIMIT_EXCEEDED",
            headers=headers,
        )
    return PerspectiveError(exc.status_code, message, headers=headers or None)


class GoogleErrorRoute(APIRoute):
    """Answer every failure of the route in Google's error envelope."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def google_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except PerspectiveError as exc:
                return exc.response()
            except RequestValidationError as exc:
                return from_validation(exc).response()
            except HTTPException as exc:
                return from_http(exc).response()
            except ModelUnavailable as exc:
                return PerspectiveError(503, str(exc), headers={"Retry-After": "1"}).response()
            except (Overloaded, BatcherStopped) as exc:
                return PerspectiveError(
                    503, f"server busy: {exc}; retry shortly", headers={"Retry-After": "1"}
                ).response()

        return google_errors
