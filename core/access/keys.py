"""API keys: ``ains_`` + 256 bits of randomness, shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.platform.db import Database
from ains.core.platform.errors import NotFound
from ains.models.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyView, Scope
from ains.models.tables import ApiKey, Client, as_utc, utcnow

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


async def _verify(
    session: AsyncSession, digest: str, now: datetime | None = None
) -> tuple[Principal, datetime | None] | None:
    """The principal of a key hash and when the key expires, or None when it is unknown, expired or revoked."""
    row = (await session.execute(select(ApiKey).where(ApiKey.key_hash == digest))).scalar_one_or_none()
    # The lookup is by hash, so timing reveals nothing about the key; compare anyway in constant time.
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return _principal_of(row, now)


def _principal_of(row: ApiKey, now: datetime | None) -> tuple[Principal, datetime | None] | None:
    now = now or utcnow()
    if row.revoked_at is not None:
        return None
    expires_at = as_utc(row.expires_at)
    if expires_at is not None and expires_at <= now:
        return None
    principal = Principal(
        key_id=row.id,
        client_id=row.client_id,
        scopes=frozenset(row.scopes),
        rate_limit_per_minute=row.rate_limit_per_minute,
    )
    return principal, expires_at


async def principal_by_key_id(
    session: AsyncSession, key_id: str, now: datetime | None = None
) -> tuple[Principal, datetime | None] | None:
    """The principal of a key by its id (a dashboard session names its key), and when the key expires;
    None when the key is unknown, expired or revoked."""
    row = await session.get(ApiKey, key_id)
    return None if row is None else _principal_of(row, now)


async def authenticate(session: AsyncSession, presented: str, now: datetime | None = None) -> Principal | None:
    """The principal for a presented key, or None when it is unknown, expired or revoked."""
    if not presented.startswith(KEY_PREFIX):
        return None
    verified = await _verify(session, hash_key(presented), now)
    return None if verified is None else verified[0]


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    expires_at: datetime | None
    fresh_until: float  # time.monotonic()


class KeyCache:
    """Keys this process verified recently, by SHA-256 digest, so most requests skip the key lookup.

    - An entry is trusted for ``ttl_seconds`` (setting ``api_key_cache_ttl_seconds``); then the key is
      looked up again. A key revoked through another API process therefore stops working here within the
      TTL; revoked through this process (``revoke_key``) it stops at once, as every cache in the process
      forgets it when the revocation commits.
    - A key's expiry is checked on every request, cached or not.
    - Only keys that verified are cached: unknown, revoked and expired keys always reach the DB, so a key
      works as soon as it is created. At most ``max_entries`` keys are kept (the oldest are dropped first).
    - ``ttl_seconds`` 0 disables the cache.
    """

    _live: weakref.WeakSet[KeyCache] = weakref.WeakSet()

    def __init__(self, ttl_seconds: float, max_entries: int = 10_000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[str, _Verified] = {}
        # Bumped by every forget: a lookup that started before a revocation committed must not cache
        # what it read.
        self._generation = 0
        KeyCache._live.add(self)

    async def authenticate(self, db: Database, presented: str) -> Principal | None:
        """The principal for a presented key, or None when it is unknown, expired or revoked."""
        if not presented.startswith(KEY_PREFIX):
            return None
        digest = hash_key(presented)
        entry = self._entries.get(digest)
        if entry is not None:
            if time.monotonic() < entry.fresh_until:
                if entry.expires_at is not None and entry.expires_at <= utcnow():
                    self._entries.pop(digest, None)
                    return None
                return entry.principal
            self._entries.pop(digest, None)
        generation = self._generation
        async with db.session() as session:
            verified = await _verify(session, digest)
        if verified is None:
            return None
        principal, expires_at = verified
        if self.ttl_seconds > 0 and generation == self._generation:
            if len(self._entries) >= self.max_entries:
                del self._entries[next(iter(self._entries))]
            self._entries[digest] = _Verified(principal, expires_at, time.monotonic() + self.ttl_seconds)
        return principal

    def forget(self, digest: str) -> None:
        self._generation += 1
        self._entries.pop(digest, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    @classmethod
    def forget_everywhere(cls, digest: str) -> None:
        for cache in list(cls._live):
            cache.forget(digest)


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
    # This process's caches forget the key now and again once the revocation is committed (a request that
    # read the key in between must not keep it): the key stops working here at once.
    digest = row.key_hash
    KeyCache.forget_everywhere(digest)

    def forget_after_commit(_session: Any) -> None:
        KeyCache.forget_everywhere(digest)

    event.listen(session.sync_session, "after_commit", forget_after_commit, once=True)
    return _view(row)


async def has_admin_key(session: AsyncSession) -> bool:
    rows = (await session.execute(select(ApiKey.scopes).where(ApiKey.revoked_at.is_(None)))).scalars()
    return any(Scope.ADMIN.value in scopes for scopes in rows)
