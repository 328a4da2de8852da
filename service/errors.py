"""One error body for every 4xx/5xx: ``{"error": {"status", "field", "reason", "message"}}``.

Validation problems are 422 naming the field (dotted path such as ``molecules.2.smiles``) and
pydantic's error type as the reason; molecules the model cannot handle are 422 with the
:class:`~adjoint_sampling.errors.InvalidMoleculeError` reason. Unexpected exceptions become a
500 with no detail (the traceback goes to the log only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from adjoint_sampling.service.schemas import ErrorBody, ErrorDetail

log = logging.getLogger(__name__)

_HTTP_REASONS = {
    400: "malformed_body",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "body_too_large",
    415: "unsupported_media_type",
}

# The documented error responses of the API routes (OpenAPI ``responses``).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "malformed body (not UTF-8 JSON)",
        404: "unknown job",
        409: "job not finished or failed",
        413: "request body too large",
        422: "invalid field or molecule",
        500: "internal error",
        503: "busy or not ready (Retry-After)",
        504: "time limit passed",
    }.items()
}


class ApiError(Exception):
    """An error the service answers with ``status`` and the common error body."""

    def __init__(
        self, status: int, field: str | None, reason: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.reason = reason
        self.message = message
        self.headers = headers

    def detail(self) -> ErrorDetail:
        return ErrorDetail(status=self.status, field=self.field, reason=self.reason, message=self.message)

    @classmethod
    def retry_later(cls, reason: str, message: str, retry_after_s: float) -> ApiError:
        """A 503 with ``Retry-After`` (busy, queue full, not ready yet)."""
        return cls(503, None, reason, message, headers={"Retry-After": str(retry_after_s)})


class BodyTooLarge(StarletteHTTPException):
    """The streamed request body passed the size limit (FastAPI re-raises HTTPExceptions as is)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(status_code=413, detail=f"request body is larger than {max_bytes} bytes")


def error_payload(status: int, field: str | None, reason: str, message: str) -> dict[str, object]:
    """The JSON body of an error response."""
    return ErrorBody(error=ErrorDetail(status=status, field=field, reason=reason, message=message)).model_dump()


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        error_payload(error.status, error.field, error.reason, error.message),
        status_code=error.status,
        headers=error.headers,
    )


def _validation_field(loc: tuple[object, ...]) -> str | None:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) if parts else "body"


def install_error_handlers(app: FastAPI, on_error: Callable[[ApiError], None]) -> None:
    """Answer every error with the common body; ``on_error`` sees each one (for metrics)."""

    def respond(error: ApiError) -> JSONResponse:
        on_error(error)
        return error_response(error)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return respond(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": ("body",), "type": "invalid", "msg": "invalid request"}
        field = _validation_field(tuple(first.get("loc", ())))
        reason = str(first.get("type", "invalid"))
        if reason == "json_invalid":
            field = "body"
        message = f"{field}: {first.get('msg', 'invalid value')}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problem(s))"
        return respond(ApiError(422, field, reason, message))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = _HTTP_REASONS.get(exc.status_code, "http_error")
        field = "body" if exc.status_code in (400, 413, 415) else None
        message = str(exc.detail) if exc.detail else reason.replace("_", " ")
        return respond(ApiError(exc.status_code, field, reason, message, headers=getattr(exc, "headers", None)))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return respond(ApiError(500, None, "internal_error", "internal server error (logged)"))
