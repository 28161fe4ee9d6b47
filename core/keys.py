"""API keys: ``ains_`` + 256 bits of randomness, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFound
from models.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyView, Scope
from models.tables import ApiKey, Client, as_utc, utcnow

KEY_PREFIX = "ains_"
KEY_RANDOM_BYTES = 32  # 256 bits
DISPLAY_PREFIX_LENGTH = 12


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_RANDOM_BYTES)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    key_id: str
    client_id: str
    scopes: frozenset[str]
    rate_limit_per_minute: int | None

    def has(self, scope: Scope) -> bool:
        return scope.value in self.scopes or Scope.ADMIN.value in self.scopes


def _view(row: ApiKey) -> ApiKeyView:
    return ApiKeyView(
        id=row.id,
        client_id=row.client_id,
        name=row.name,
        prefix=row.prefix,
        scopes=[Scope(s) for s in row.scopes],
        rate_limit_per_minute=row.rate_limit_per_minute,
        expires_at=as_utc(row.expires_at),
        revoked_at=as_utc(row.revoked_at),
        created_at=as_utc(row.created_at) or utcnow(),
    )


async def ensure_client(session: AsyncSession, client_id: str) -> None:
    if await session.get(Client, client_id) is None:
        session.add(Client(id=client_id, name=client_id))
        await session.flush()


async def create_key(session: AsyncSession, spec: ApiKeyCreate) -> ApiKeyCreated:
    await ensure_client(session, spec.client_id)
    key = generate_key()
    row = ApiKey(
        id=str(uuid.uuid4()),
        client_id=spec.client_id,
        name=spec.name,
        key_hash=hash_key(key),
        prefix=key[:DISPLAY_PREFIX_LENGTH],
        scopes=sorted({s.value for s in spec.scopes}),
        rate_limit_per_minute=spec.rate_limit_per_minute,
        expires_at=spec.expires_at,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return ApiKeyCreated(**_view(row).model_dump(), key=key)


async def authenticate(session: AsyncSession, presented: str, now: datetime | None = None) -> Principal | None:
    """The principal for a presented key, or None when it is unknown, expired or revoked."""
    if not presented.startswith(KEY_PREFIX):
        return None
    digest = hash_key(presented)
    row = (await session.execute(select(ApiKey).where(ApiKey.key_hash == digest))).scalar_one_or_none()
    # The lookup is by hash, so timing reveals nothing about the key; compare anyway in constant time.
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    now = now or utcnow()
    if row.revoked_at is not None:
        return None
    expires_at = as_utc(row.expires_at)
    if expires_at is not None and expires_at <= now:
        return None
    return Principal(
        key_id=row.id,
        client_id=row.client_id,
        scopes=frozenset(row.scopes),
        rate_limit_per_minute=row.rate_limit_per_minute,
    )


async def list_keys(session: AsyncSession, client_id: str | None = None) -> list[ApiKeyView]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if client_id:
        query = query.where(ApiKey.client_id == client_id)
    return [_view(row) for row in (await session.execute(query)).scalars()]


async def revoke_key(session: AsyncSession, key_id: str) -> ApiKeyView:
    row = await session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"API key {key_id!r} not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
    return _view(row)


async def has_admin_key(session: AsyncSession) -> bool:
    rows = (await session.execute(select(ApiKey.scopes).where(ApiKey.revoked_at.is_(None)))).scalars()
    return any(Scope.ADMIN.value in scopes for scopes in rows)
