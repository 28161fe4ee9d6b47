"""Per-key rate limits with a sliding-window counter, in Redis (shared by all API replicas) or in-process.

The sliding-window counter weights the previous fixed window by how much of it still overlaps the last
60 seconds: O(1) memory per key, and within a few percent of an exact sliding log.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("ains.ratelimit")
WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_seconds: int


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int) -> Decision: ...


def _decide(current: int, previous: int, limit: int, now: float) -> Decision:
    elapsed = (now % WINDOW_SECONDS) / WINDOW_SECONDS
    estimated = previous * (1 - elapsed) + current
    if estimated > limit:
        # Wait until enough of the previous window has slid out, or the current window ends.
        if previous > 0:
            needed = (estimated - limit) / previous * WINDOW_SECONDS
            retry = min(needed, WINDOW_SECONDS - now % WINDOW_SECONDS)
        else:
            retry = WINDOW_SECONDS - now % WINDOW_SECONDS
        return Decision(False, limit, 0, max(1, math.ceil(retry)))
    return Decision(True, limit, max(0, int(limit - estimated)), 0)


class InProcessRateLimiter:
    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}

    async def hit(self, key: str, limit: int) -> Decision:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        current = self._counts.get((key, window), 0) + 1
        previous = self._counts.get((key, window - 1), 0)
        decision = _decide(current, previous, limit, now)
        if decision.allowed:
            self._counts[(key, window)] = current
        if len(self._counts) > 100_000:
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= window - 1}
        return decision


class RedisRateLimiter:
    """Counts in Redis; when Redis fails it degrades to in-process limits and says so via ``degraded``."""

    def __init__(self, redis: Redis, prefix: str = "ains:rl:") -> None:
        self._redis = redis
        self._prefix = prefix
        self._fallback = InProcessRateLimiter()
        self.degraded = False

    async def hit(self, key: str, limit: int) -> Decision:
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        current_key = f"{self._prefix}{key}:{window}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(current_key)
                pipe.expire(current_key, WINDOW_SECONDS * 2)
                pipe.get(f"{self._prefix}{key}:{window - 1}")
                current, _, previous = await pipe.execute()
        except (RedisError, OSError) as exc:
            if not self.degraded:
                log.warning("redis unavailable for rate limiting, using in-process limits: %s", exc)
            self.degraded = True
            return await self._fallback.hit(key, limit)
        if self.degraded:
            log.info("redis rate limiting restored")
        self.degraded = False
        decision = _decide(int(current), int(previous or 0), limit, now)
        if not decision.allowed:
            # Rejected requests do not consume quota.
            try:
                await self._redis.decr(current_key)
            except (RedisError, OSError):
                pass
        return decision
