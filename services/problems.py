"""RFC 9457 problem documents: the one mapping of core errors to HTTP statuses and the one builder
of the document every door answers with (REST and GraphQL over HTTP, the body-size limit, the NATS
command replies, which carry the status in a `Scheduler-Status` header).
"""

from __future__ import annotations

from typing import Any

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

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "https://scheduler-service/problems/"
# The first matching kind decides; a core error of no listed kind is a 400.
STATUS_BY_ERROR: list[tuple[type[DomainError], int]] = [
    (ValidationFailed, 422),
    (NotFound, 404),
    (Conflict, 409),
    (QuotaExceeded, 429),
    (RateLimited, 429),
    (Forbidden, 403),
    (Unauthenticated, 401),
]
DEFAULT_ERROR_STATUS = 400
INTERNAL_ERROR = ("internal_error", "Internal error", "an unexpected error occurred; it has been logged")
UNAVAILABLE = ("service_unavailable", "Service unavailable", "the database is unavailable; retry shortly")


def status_of(error: DomainError) -> int:
    """The HTTP status (or its equivalent) of a core error."""
    for kind, status in STATUS_BY_ERROR:
        if isinstance(error, kind):
            return status
    return DEFAULT_ERROR_STATUS


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    correlation_id: str | None = None,
) -> dict[str, Any]:
    """The problem document: `type`, `title`, `status`, `detail`, `code`, `errors[{field, message}]`
    and `correlation_id`, in that order."""
    return {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "errors": [e.as_dict() for e in errors or ()],
        "correlation_id": correlation_id,
    }


def problem_of(error: DomainError, correlation_id: str | None = None) -> dict[str, Any]:
    """The problem document of a core error."""
    return problem(status_of(error), error.code, error.title, error.message, error.errors, correlation_id)


def internal_problem(correlation_id: str | None = None) -> dict[str, Any]:
    """The problem document of an unexpected failure (500); the failure itself is logged, not told."""
    return problem(500, *INTERNAL_ERROR, [], correlation_id)
