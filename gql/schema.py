"""The GraphQL schema, its limits, and the router mounted at /graphql (with its GraphiQL page,
web/graphiql.html, which loads GraphiQL from this server rather than from a CDN)."""

from __future__ import annotations

from pathlib import Path

import strawberry
from fastapi import Request
from fastapi.responses import FileResponse
from graphql import GraphQLError
from strawberry import UNSET
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import MaskErrors, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter
from strawberry.fastapi import GraphQLRouter

from core.errors import DomainError
from core.tuning import MAX_ALIASES, MAX_DEPTH, MAX_TOKENS
from gql.context import get_context
from gql.mutations import Mutation
from gql.queries import Query
from gql.subscriptions import Subscription
from services.principals import HeaderMap

GRAPHIQL_PAGE = Path(__file__).resolve().parent.parent / "web" / "graphiql.html"


def _should_mask(error: GraphQLError) -> bool:
    """Mask unexpected exceptions; keep our own translated errors and GraphQL's validation errors."""
    original = error.original_error
    return original is not None and not isinstance(original, GraphQLError)


class Schema(strawberry.Schema):
    def process_errors(self, errors, execution_context=None) -> None:
        """Log only unexpected errors: a rejected input or an unknown id is the client's business."""
        unexpected = [e for e in errors if _should_mask(e)]
        if unexpected:
            super().process_errors(unexpected, execution_context)


schema = Schema(
    query=Query,
    mutation=Mutation,
    subscription=Subscription,
    extensions=[
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH),
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: MaskErrors(should_mask_error=_should_mask),
    ],
)


class Router(GraphQLRouter):
    async def render_graphql_ide(self, request: Request) -> FileResponse:
        """GET /graphql from a browser: the local GraphiQL page (its scripts are under /vendor/graphiql/)."""
        return FileResponse(GRAPHIQL_PAGE, media_type="text/html", headers={"Cache-Control": "no-cache"})

    async def on_ws_connect(self, context):
        """Authenticate a WebSocket from its connection_init payload ({"Authorization": "Bearer …"}); its
        keys are header names, matched without regard to case."""
        params = context.connection_params or {}
        try:
            context.actor = await context.resolve(HeaderMap(params))
        except DomainError as error:
            raise ConnectionRejectionError({"code": error.code, "message": error.message}) from None
        return UNSET


def graphql_router() -> GraphQLRouter:
    return Router(schema, context_getter=get_context, graphql_ide="graphiql")
