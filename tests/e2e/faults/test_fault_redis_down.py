"""Redis unreachable: the API keeps serving with in-process rate limits and says so in /ready and the logs."""

from __future__ import annotations

import logging

import httpx
import pytest

from ains.api.app import create_app
from tests.e2e.faults.faultkit import dead_port
from tests.support.servers import serve
from tests.support.stack import Stack, auth


async def test_api_serves_with_in_process_limits_when_redis_is_down(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    settings = stack.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{dead_port()}/0"})
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key(rate_limit_per_minute=4)
    server = await serve(create_app(settings))
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            with caplog.at_level(logging.INFO, logger="ains.ratelimit"):
                submitted = await http.post(
                    "/v1/tasks",
                    headers=auth(key),
                    json={"type": "echo", "input": {"v": 1}, "required_capabilities": [tag]},
                )
                assert submitted.status_code == 202, submitted.text
                statuses = [
                    (await http.get(f"/v1/tasks/{submitted.json()['id']}", headers=auth(key))).status_code
                    for _ in range(4)
                ]
            # 4 per minute still holds without Redis: the fifth request in the window is refused.
            assert statuses == [200, 200, 200, 429], statuses
            assert any(
                r.levelno == logging.WARNING and "redis unavailable" in r.getMessage() for r in caplog.records
            ), [r.getMessage() for r in caplog.records]

            ready = await http.get("/ready")
            assert ready.status_code == 503, ready.text
            body = ready.json()
            assert "redis" in body["failing"], body
            assert body["checks"]["redis"].startswith("failing"), body
            assert body["checks"]["rate_limiting"].startswith("degraded"), body
            assert body["checks"]["database"] == "ok" and body["checks"]["temporal"] == "ok", body
            assert (await http.get("/health")).status_code == 200

        # The accepted task runs normally: Redis is not on the task path.
        done = await stack.wait_for(stack.admin_key, submitted.json()["id"])
        assert done["status"] == "succeeded", done
    finally:
        await server.stop()
