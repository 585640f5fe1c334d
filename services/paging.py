"""Keyset (cursor) pagination for the GraphQL connections, newest first.

A cursor is the opaque, URL-safe encoding of the sort key of the last row seen, so a page is stable
when rows are inserted or deleted elsewhere, and costs the same on page 1 or page 10,000.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import ValidationFailed

T = TypeVar("T")
MAX_PAGE_SIZE = 100


class KeysetPage(BaseModel, Generic[T]):
    items: list[T]
    cursors: list[str]
    total: int
    has_next: bool


def encode_cursor(values: tuple[Any, ...]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, uuid.UUID) else v for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: tuple[type, ...], field: str = "after") -> tuple[Any, ...]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(kinds):
            raise ValueError("shape")
        values = []
        for kind, value in zip(kinds, raw):
            if kind is datetime:
                values.append(datetime.fromisoformat(value))
            elif kind is uuid.UUID:
                values.append(uuid.UUID(value))
            else:
                values.append(kind(value))
        return tuple(values)
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ValidationFailed.single(field, "is not a cursor returned by this API") from None


def check_page_size(first: int, field: str = "first") -> None:
    if not 1 <= first <= MAX_PAGE_SIZE:
        raise ValidationFailed.single(field, f"must be between 1 and {MAX_PAGE_SIZE}")


async def keyset_rows(
    session: AsyncSession, model: Any, conditions: list[Any], keys: tuple[Any, ...], first: int, after: str | None
) -> tuple[list[Any], list[str], int, bool]:
    """Rows ordered by `keys` descending, after the cursor; returns (rows, cursors, total, has_next)."""
    check_page_size(first)
    total = (await session.exec(select(sa.func.count()).select_from(model).where(*conditions))).one()
    query = select(model).where(*conditions)
    if after:
        kinds = tuple(k.type.python_type for k in keys)
        position = decode_cursor(after, kinds)
        query = query.where(sa.tuple_(*keys) < sa.tuple_(*position))
    rows = list((await session.exec(query.order_by(*(k.desc() for k in keys)).limit(first + 1))).all())
    has_next = len(rows) > first
    rows = rows[:first]
    cursors = [encode_cursor(tuple(getattr(r, k.key) for k in keys)) for r in rows]
    return rows, cursors, total, has_next


async def offset_rows(
    session: AsyncSession, model: Any, conditions: list[Any], keys: tuple[Any, ...], page: int, limit: int
) -> tuple[list[Any], int]:
    """Page `page` (1-based) of rows ordered by `keys` descending, and the total count (REST lists)."""
    total = (await session.exec(select(sa.func.count()).select_from(model).where(*conditions))).one()
    query = select(model).where(*conditions).order_by(*(k.desc() for k in keys)).offset((page - 1) * limit).limit(limit)
    return list((await session.exec(query)).all()), total
