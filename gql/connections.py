"""Cursor connections (Relay style: edges, pageInfo, totalCount) over the services' keyset pages."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Generic, TypeVar

import strawberry

from core.errors import DomainError
from gql.enums import ExecutionStatus
from gql.errors import query_error
from gql.types import AuditEntry, Execution, Schedule
from services.schemas import ExecutionFilter

NodeT = TypeVar("NodeT")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type
class ScheduleConnection:
    edges: list[Edge[Schedule]]
    page_info: PageInfo
    total_count: int


@strawberry.type
class ExecutionConnection:
    edges: list[Edge[Execution]]
    page_info: PageInfo
    total_count: int


@strawberry.type
class AuditConnection:
    edges: list[Edge[AuditEntry]]
    page_info: PageInfo
    total_count: int


def build(connection_type, node_type, page):
    edges = [Edge(cursor=c, node=node_type.from_out(item)) for item, c in zip(page.items, page.cursors)]
    return connection_type(
        edges=edges,
        page_info=PageInfo(has_next_page=page.has_next, end_cursor=page.cursors[-1] if page.cursors else None),
        total_count=page.total,
    )


async def execution_connection(
    info,
    first: int,
    after: str | None,
    schedule_id: uuid.UUID | None = None,
    statuses: list[ExecutionStatus] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    dead_lettered: bool | None = None,
) -> ExecutionConnection:
    filters = ExecutionFilter(
        schedule_id=schedule_id,
        status=",".join(s.value for s in statuses) if statuses else None,
        since=since,
        until=until,
        dead_lettered=dead_lettered,
    )
    try:
        page = await info.context.executions.connection(filters, info.context.actor, first, after)
    except DomainError as error:
        raise query_error(error) from None
    return build(ExecutionConnection, Execution, page)
