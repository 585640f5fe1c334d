"""The single translation of errors into RFC 9457 `application/problem+json` responses."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    Conflict,
    DomainError,
    FieldError,
    Forbidden,
    NotFound,
    QuotaExceeded,
    RateLimited,
    Unauthenticated,
    ValidationFailed,
)
from models.db import database_unreachable

log = logging.getLogger("api.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
STATUS_BY_ERROR: list[tuple[type[DomainError], int]] = [
    (ValidationFailed, 422),
    (NotFound, 404),
    (Conflict, 409),
    (QuotaExceeded, 429),
    (RateLimited, 429),
    (Forbidden, 403),
    (Unauthenticated, 401),
]
LOCATION_PREFIXES = ("body", "query", "path", "header")


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, plus a stable `code` and the offending fields."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[FieldProblem] = []
    correlation_id: str | None = None


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {}}, "description": title}
    for status, title in [
        (400, "Unreadable request body"),
        (401, "Authentication required"),
        (403, "Forbidden"),
        (404, "Not found"),
        (409, "Conflict"),
        (422, "Validation failed"),
        (429, "Quota or rate limit exceeded"),
    ]
}


def problem_response(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[FieldError],
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(
        type=f"https://scheduler-service/problems/{code}",
        title=title,
        status=status,
        detail=detail,
        code=code,
        errors=[FieldProblem(field=e.field, message=e.message) for e in errors],
        correlation_id=getattr(request.state, "correlation_id", None),
    )
    return JSONResponse(body.model_dump(), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _status_of(error: DomainError) -> int:
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return 400


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in LOCATION_PREFIXES:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _request_validation_errors(error: RequestValidationError) -> list[FieldError]:
    result = []
    for item in error.errors():
        message = item.get("msg", "is invalid")
        field = _field_of(tuple(item.get("loc", ())))
        if item.get("type") == "json_invalid":
            # FastAPI locates a JSON syntax error at ("body", <character position>).
            position = field
            field = "body"
            message = f"is not valid JSON at character {position}: {item.get('ctx', {}).get('error', 'syntax error')}"
        result.append(FieldError(field, message))
    return result


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, error: DomainError) -> JSONResponse:
        headers = {}
        if isinstance(error, RateLimited):
            headers["Retry-After"] = str(error.retry_after_seconds)
        if isinstance(error, Unauthenticated):
            headers["WWW-Authenticate"] = 'Bearer realm="scheduler"'
        return problem_response(
            request, _status_of(error), error.code, error.title, error.message, error.errors, headers
        )

    @app.exception_handler(RequestValidationError)
    async def request_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = _request_validation_errors(error)
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        return problem_response(request, 422, "validation_error", "Validation failed", detail, errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
            error.status_code, "http_error"
        )
        if error.status_code == 413:
            return problem_response(
                request, 413, code, "Payload too large", str(error.detail), [FieldError("body", str(error.detail))]
            )
        # FastAPI answers 400 when it cannot even parse the body (e.g. nesting too deep to decode).
        errors = [FieldError("body", str(error.detail))] if error.status_code == 400 else []
        return problem_response(request, error.status_code, code, str(error.detail), str(error.detail), errors)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        if database_unreachable(error):
            # PostgreSQL restarting or unreachable: nothing was written; the client may retry.
            log.warning(
                "database unavailable",
                extra={
                    "action": "api.database_unavailable",
                    "path": request.url.path,
                    "error": f"{type(error).__name__}: {error}"[:300],
                },
            )
            return problem_response(
                request,
                503,
                "service_unavailable",
                "Service unavailable",
                "the database is unavailable; retry shortly",
                [],
                {"Retry-After": "2"},
            )
        log.exception("unhandled error", extra={"action": "api.unhandled_error", "path": request.url.path})
        return problem_response(
            request, 500, "internal_error", "Internal error", "an unexpected error occurred; it has been logged", []
        )

    # A handler for `Exception` runs in Starlette's outermost middleware, which sends its response and
    # then re-raises, so the server logged a full "Exception in ASGI application" traceback for every
    # request answered 503 while PostgreSQL was down (hundreds per outage in the chaos suite). The
    # errors an outage raises get the same handler where it ends the request.
    for kind in (DBAPIError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(kind, unexpected)
