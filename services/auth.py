"""API keys: created and revoked by an operator (python -m runtime.apikeys), stored as SHA-256 hashes.

A key looks like `sk_<8-hex prefix>_<43 url-safe chars>` (256 random bits), so a fast hash is enough:
there is nothing to brute-force. Verified keys are cached in-process for API_KEY_CACHE_SECONDS, which
bounds how long a revoked key keeps working.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.errors import Forbidden, NotFound, Unauthenticated, ValidationFailed
from models import ApiKey
from services.context import Actor, Role

KEY_PREFIX = "sk_"


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    prefix: str
    principal: str
    role: str
    description: str | None
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyService:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], cache_seconds: float = 10.0) -> None:
        self.sessions = sessions
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Principal | None]] = {}

    async def create(
        self, principal: str, role: str, now: datetime, description: str | None = None
    ) -> tuple[ApiKeyOut, str]:
        """A new key; the secret is returned once and never stored."""
        if role not in {r.value for r in Role}:
            raise ValidationFailed.single("role", f"must be one of {', '.join(r.value for r in Role)}")
        if not principal or len(principal) > 255:
            raise ValidationFailed.single("principal", "must be 1-255 characters")
        prefix = secrets.token_hex(4)
        secret = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        row = ApiKey(
            prefix=prefix,
            key_hash=hash_key(secret),
            principal=principal,
            role=role,
            description=description,
            created_at=now,
        )
        async with self.sessions() as session, session.begin():
            session.add(row)
        return ApiKeyOut.model_validate(row.model_dump()), secret

    async def list(self) -> list[ApiKeyOut]:
        async with self.sessions() as session:
            rows = (await session.exec(select(ApiKey).order_by(col(ApiKey.created_at)))).all()
        return [ApiKeyOut.model_validate(r.model_dump()) for r in rows]

    async def revoke(self, ident: str, now: datetime) -> ApiKeyOut:
        """Revoke by id or prefix."""
        conditions = [ApiKey.prefix == ident]
        try:
            conditions.append(ApiKey.id == uuid.UUID(ident))
        except ValueError:
            pass
        async with self.sessions() as session, session.begin():
            row = (await session.exec(select(ApiKey).where(or_(*conditions)))).first()
            if row is None:
                raise NotFound("api key", ident, field="key")
            row.revoked_at = row.revoked_at or now
            session.add(row)
        self._cache.clear()
        return ApiKeyOut.model_validate(row.model_dump())

    async def authenticate(self, secret: str) -> Principal | None:
        """The principal of a valid, unrevoked key; None otherwise."""
        if not secret.startswith(KEY_PREFIX) or len(secret) > 200:
            return None
        digest = hash_key(secret)
        cached = self._cache.get(digest)
        if cached and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        async with self.sessions() as session:
            row = (
                await session.exec(select(ApiKey).where(ApiKey.key_hash == digest, col(ApiKey.revoked_at).is_(None)))
            ).first()
        principal = Principal(row.principal, Role(row.role)) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (time.monotonic(), principal)
        return principal


def bearer_token(authorization: str | None, api_key_header: str | None = None) -> str | None:
    """The key from `Authorization: Bearer <key>` (or an `X-API-Key` header)."""
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return api_key_header.strip() if api_key_header and api_key_header.strip() else None


async def resolve_actor(
    api_keys: ApiKeyService,
    auth_enabled: bool,
    token: str | None,
    named: str | None,
    named_header: str,
    correlation_id: str,
) -> Actor:
    """The acting principal of a request, the same way for REST, GraphQL and NATS.

    With authentication off, the caller is an admin named by its header (or `anonymous`). With it
    on, the key decides who acts; a header naming someone else is refused unless the key is an
    admin's, in which case the admin acts for that creator.
    """
    if not auth_enabled:
        return Actor(name=named or "anonymous", correlation_id=correlation_id, role=Role.ADMIN)
    if not token:
        raise Unauthenticated()
    principal = await api_keys.authenticate(token)
    if principal is None:
        raise Unauthenticated("the API key is invalid or revoked")
    acting_for = None
    if named and named != principal.name:
        if principal.role != Role.ADMIN:
            raise Forbidden(
                f"{named_header} names {named!r} but the credentials belong to {principal.name!r}; "
                "only an admin may act for another creator",
                field=named_header,
            )
        acting_for = named
    return Actor(name=principal.name, correlation_id=correlation_id, role=principal.role, acting_for=acting_for)
