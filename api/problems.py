"""The REST door's translation of errors into RFC 9457 `application/problem+json` responses (the
documents and the statuses of core errors come from `services.problems`)."""

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

from core.errors import DomainError, FieldError, RateLimited, Unauthenticated
from models.db import database_unreachable
from services.problems import PROBLEM_MEDIA_TYPE, UNAVAILABLE, internal_problem, problem, status_of

log = logging.getLogger("api.errors")

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
    body = problem(status, code, title, detail, errors, getattr(request.state, "correlation_id", None))
    return _json(body, headers)


def _json(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers)


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


async def _domain_error(request: Request, error: DomainError) -> JSONResponse:
    headers = {}
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after_seconds)
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="scheduler"'
    return problem_response(request, status_of(error), error.code, error.title, error.message, error.errors, headers)


async def _request_invalid(request: Request, error: RequestValidationError) -> JSONResponse:
    errors = _request_validation_errors(error)
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    return problem_response(request, 422, "validation_error", "Validation failed", detail, errors)


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(error.status_code, "http_error")
    if error.status_code == 413:
        return problem_response(
            request, 413, code, "Payload too large", str(error.detail), [FieldError("body", str(error.detail))]
        )
    # FastAPI answers 400 when it cannot even parse the body (e.g. nesting too deep to decode).
    errors = [FieldError("body", str(error.detail))] if error.status_code == 400 else []
    return problem_response(request, error.status_code, code, str(error.detail), str(error.detail), errors)


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    correlation_id = getattr(request.state, "correlation_id", None)
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
        return _json(problem(503, *UNAVAILABLE, [], correlation_id), {"Retry-After": "2"})
    log.exception("unhandled error", extra={"action": "api.unhandled_error", "path": request.url.path})
    return _json(internal_problem(correlation_id))


def install_problem_handlers(app: FastAPI) -> None:
    """Translate core errors, request validation errors, HTTP errors and unexpected failures."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    # A handler for `Exception` runs in Starlette's outermost middleware, which sends its response and
    # then re-raises, so the server would log a full "Exception in ASGI application" traceback for
    # every request answered 503 while PostgreSQL is down. The errors an outage raises get the same
    # handler where it ends the request.
    for kind in (DBAPIError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(kind, _unexpected)
