"""Process-wide resources of the API, created in the app lifespan and reached through dependencies."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from redis.asyncio import Redis
from temporalio.client import Client

from ains.api.audit import AuditWriter
from ains.api.read_cache import RegistryReadCache
from ains.api.task_starter import TaskStarter
from ains.core.access.keys import KeyCache
from ains.core.platform.db import Database
from ains.core.platform.errors import Unavailable
from ains.core.platform.ratelimit import InProcessRateLimiter, RateLimiter, RedisRateLimiter
from ains.core.platform.settings import Settings
from ains.core.platform.temporal import connect
from ains.core.routing.dispatch import Dispatcher

log = logging.getLogger("ains.api")


@dataclass
class AppState:
    settings: Settings
    db: Database
    rate_limiter: RateLimiter
    redis: Redis | None = None
    # Verified API keys (see KeyCache); the default caches nothing.
    key_cache: KeyCache = field(default_factory=lambda: KeyCache(0))
    # Bodies of GET /v1/agents and the leaderboard for registry_read_cache_ttl_seconds (see api.read_cache).
    read_cache: RegistryReadCache = field(init=False)
    # Starts submitted tasks' runs after their POST is answered.
    starter: TaskStarter = field(default_factory=TaskStarter)
    # Buffers audit entries (api.audit); None when AINS_AUDIT_ENABLED is false.
    audit: AuditWriter | None = None
    _temporal: Client | None = None
    _temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.read_cache = RegistryReadCache(self.settings)

    @classmethod
    def create(cls, settings: Settings) -> AppState:
        db = Database(settings.effective_database_url, settings.database_pool_size)
        key_cache = KeyCache(settings.api_key_cache_ttl_seconds)
        if settings.redis_url:
            redis = Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
            return cls(settings=settings, db=db, rate_limiter=RedisRateLimiter(redis), redis=redis, key_cache=key_cache)
        return cls(settings=settings, db=db, rate_limiter=InProcessRateLimiter(), key_cache=key_cache)

    async def temporal(self) -> Client:
        """The Temporal client, connected on first use so the API can start (and report) while Temporal is down."""
        if self._temporal is not None:
            return self._temporal
        async with self._temporal_lock:
            if self._temporal is None:
                try:
                    self._temporal = await connect(self.settings)
                except RuntimeError as exc:
                    raise Unavailable(f"Temporal at {self.settings.temporal_address} is unreachable: {exc}") from exc
        return self._temporal

    async def release_slots(self, agent_id: str) -> None:
        """Hand the agent's free slots to waiting tasks (it was registered, made available, revived or given
        more slots). Best effort: the dispatch reconciler hands out any slot this misses."""
        try:
            await Dispatcher(self.db, await self.temporal(), self.settings).release([agent_id], source="agent")
        except Unavailable as exc:
            log.warning("agent %s changed; its free slots wait for the reconciler: %s", agent_id, exc.message)

    async def close(self) -> None:
        if self.audit is not None:
            await self.audit.close()
        await self.starter.close()
        await self.db.dispose()
        if self.redis is not None:
            await self.redis.aclose()
