"""Sliding-window limits in-process and in real Redis (shared between limiter instances, as between replicas)."""

from __future__ import annotations

import os
import uuid

import pytest
from redis.asyncio import Redis

from ains.core.platform.ratelimit import InProcessRateLimiter, RedisRateLimiter
from tests.support.databases import REDIS_ENV


async def test_in_process_limit_and_retry_after() -> None:
    limiter = InProcessRateLimiter()
    results = [await limiter.hit("k", 5) for _ in range(6)]
    assert [r.allowed for r in results] == [True] * 5 + [False]
    assert results[-1].retry_after_seconds >= 1
    assert (await limiter.hit("other", 5)).allowed


@pytest.mark.skipif(not os.environ.get(REDIS_ENV), reason="needs AINS_TEST_REDIS_URL")
async def test_redis_limit_is_shared_across_instances() -> None:
    prefix = f"ains-test:{uuid.uuid4().hex}:"
    first = Redis.from_url(os.environ[REDIS_ENV])
    second = Redis.from_url(os.environ[REDIS_ENV])
    try:
        a, b = RedisRateLimiter(first, prefix), RedisRateLimiter(second, prefix)
        results = [await (a if i % 2 else b).hit("key", 4) for i in range(5)]
        assert [r.allowed for r in results] == [True, True, True, True, False]
        assert not a.degraded and not b.degraded
    finally:
        keys = [k async for k in first.scan_iter(f"{prefix}*")]
        if keys:
            await first.delete(*keys)
        await first.aclose()
        await second.aclose()


async def test_redis_down_degrades_to_in_process_limits() -> None:
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    limiter = RedisRateLimiter(dead)
    results = [await limiter.hit("k", 2) for _ in range(3)]
    assert [r.allowed for r in results] == [True, True, False]
    assert limiter.degraded
    await dead.aclose()
