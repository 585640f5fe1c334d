"""Typed domain errors with stable codes.

Services raise only these. Each interface (REST, GraphQL, NATS) translates them in one place.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field; `field` is a dotted path such as `schedules.3.cron_expression`."""

    field: str
    message: str

    def prefixed(self, prefix: str) -> FieldError:
        return FieldError(f"{prefix}.{self.field}" if self.field else prefix, self.message)

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class DomainError(Exception):
    """Base of every expected failure. `code` is stable and part of the API contract."""

    code = "error"
    title = "Error"

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors: list[FieldError] = list(errors or [])


class ValidationFailed(DomainError):
    """Input was rejected; `errors` names every offending field."""

    code = "validation_error"
    title = "Validation failed"

    def __init__(self, errors: list[FieldError], message: str | None = None) -> None:
        if not errors:
            raise ValueError("ValidationFailed needs at least one FieldError")
        summary = message or "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        super().__init__(summary, errors)

    @classmethod
    def single(cls, field: str, message: str) -> ValidationFailed:
        return cls([FieldError(field, message)])


class NotFound(DomainError):
    code = "not_found"
    title = "Not found"

    def __init__(self, kind: str, ident: object, field: str = "id") -> None:
        super().__init__(f"{kind} {ident} not found", [FieldError(field, f"no {kind} with id {ident}")])
        self.kind = kind
        self.ident = ident


class Conflict(DomainError):
    """The request clashes with the current state (duplicate name, stale version, wrong status)."""

    code = "conflict"
    title = "Conflict"

    def __init__(self, message: str, field: str = "", errors: list[FieldError] | None = None) -> None:
        super().__init__(message, errors or [FieldError(field, message)])


class VersionConflict(Conflict):
    code = "version_conflict"
    title = "Version conflict"

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(
            f"schedule was modified: version {expected} given, current version is {actual}", field="version"
        )
        self.expected = expected
        self.actual = actual


class QuotaExceeded(DomainError):
    code = "quota_exceeded"
    title = "Quota exceeded"

    def __init__(self, message: str, field: str = "created_by") -> None:
        super().__init__(message, [FieldError(field, message)])


class Forbidden(DomainError):
    code = "forbidden"
    title = "Forbidden"

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message, [FieldError(field, message)])


class Unauthenticated(DomainError):
    """No valid credentials where they are required."""

    code = "unauthenticated"
    title = "Authentication required"

    def __init__(self, message: str = "a valid API key is required (Authorization: Bearer <key>)") -> None:
        super().__init__(message, [FieldError("authorization", message)])


class RateLimited(DomainError):
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after_seconds: int, limit: str) -> None:
        message = f"write rate limit {limit} reached; retry in {retry_after_seconds} s"
        super().__init__(message, [FieldError("", message)])
        self.retry_after_seconds = retry_after_seconds
