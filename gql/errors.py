"""The one translation of core errors for GraphQL.

Mutations return typed union members (`ValidationError { errors { field message } }`, ...); queries
raise a GraphQL error whose `extensions.code` is the core error's stable code. Field paths are given
in the API's camelCase (`schedules.3.cronExpression`).
"""

from __future__ import annotations

import re

import strawberry
from graphql import GraphQLError

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

_SNAKE = re.compile(r"_([a-z0-9])")


def camel_path(path: str) -> str:
    return ".".join(_SNAKE.sub(lambda m: m.group(1).upper(), part) for part in path.split("."))


@strawberry.type
class FieldProblem:
    field: str
    message: str


@strawberry.interface
class Error:
    message: str
    code: str


@strawberry.type
class ValidationError(Error):
    errors: list[FieldProblem]


@strawberry.type
class NotFoundError(Error):
    errors: list[FieldProblem]


@strawberry.type
class ConflictError(Error):
    errors: list[FieldProblem]


@strawberry.type
class QuotaExceededError(Error):
    errors: list[FieldProblem]


@strawberry.type
class ForbiddenError(Error):
    errors: list[FieldProblem]


@strawberry.type
class RateLimitedError(Error):
    errors: list[FieldProblem]
    retry_after_seconds: int


ERROR_TYPES: list[tuple[type[DomainError], type]] = [
    (ValidationFailed, ValidationError),
    (NotFound, NotFoundError),
    (Conflict, ConflictError),
    (QuotaExceeded, QuotaExceededError),
    (Forbidden, ForbiddenError),
]


def _problems(errors: list[FieldError]) -> list[FieldProblem]:
    return [FieldProblem(field=camel_path(e.field), message=e.message) for e in errors]


def error_member(error: DomainError):
    """The union member for a core error (mutations). Missing credentials are not a member: the
    request as a whole is refused (see `query_error`)."""
    if isinstance(error, Unauthenticated):
        raise query_error(error)
    if isinstance(error, RateLimited):
        return RateLimitedError(
            message=error.message,
            code=error.code,
            errors=_problems(error.errors),
            retry_after_seconds=error.retry_after_seconds,
        )
    for kind, member in ERROR_TYPES:
        if isinstance(error, kind):
            return member(message=error.message, code=error.code, errors=_problems(error.errors))
    return ValidationError(message=error.message, code=error.code, errors=_problems(error.errors))


def query_error(error: DomainError) -> GraphQLError:
    """A GraphQL error for a core error raised while resolving a query."""
    return GraphQLError(
        error.message,
        extensions={
            "code": error.code,
            "errors": [{"field": p.field, "message": p.message} for p in _problems(error.errors)],
        },
    )
