"""Rate limits are global across API replicas: two API servers (each with its own AppState, Redis client and
in-process fallback) share one Redis, and a key's limit counts requests to both."""

from __future__ import annotations

import httpx
import pytest

from ains.api.app import create_app
from tests.support.servers import RunningServer, serve
from tests.support.stack import Stack, auth

LIMIT = 7


async def test_limit_is_shared_by_two_api_servers_through_redis(stack: Stack) -> None:
    if not stack.settings.redis_url:
        pytest.skip("needs Redis: set AINS_TEST_REDIS_URL")
    key, _ = await stack.new_key(rate_limit_per_minute=LIMIT)
    servers: list[RunningServer] = [await serve(create_app(stack.settings)) for _ in range(2)]
    clients = [httpx.AsyncClient(base_url=s.url, timeout=10) for s in servers]
    try:
        statuses: list[tuple[int, int]] = []
        for i in range(LIMIT + 3):
            replica = i % 2
            response = await clients[replica].get("/v1/tasks", headers=auth(key))
            statuses.append((replica, response.status_code))
            if response.status_code == 429:
                assert int(response.headers["Retry-After"]) >= 1
                assert response.headers["X-RateLimit-Limit"] == str(LIMIT)
                assert response.json()["error"]["code"] == "rate_limited"
        accepted = [replica for replica, status in statuses if status == 200]
        # Exactly LIMIT requests pass in total, split across both replicas; every later one is refused by
        # whichever replica gets it. Without the shared counter each replica would accept LIMIT on its own.
        assert len(accepted) == LIMIT and set(accepted) == {0, 1}
        assert statuses[LIMIT:] == [(i % 2, 429) for i in range(LIMIT, LIMIT + 3)]
        # Neither replica fell back to its in-process limiter.
        for server in servers:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as probe:
                ready = (await probe.get("/ready")).json()
            assert ready["checks"]["redis"] == "ok"
        # Another key is unaffected.
        other, _ = await stack.new_key(rate_limit_per_minute=LIMIT)
        assert (await clients[1].get("/v1/tasks", headers=auth(other))).status_code == 200
    finally:
        for client in clients:
            await client.aclose()
        for server in servers:
            await server.stop()
