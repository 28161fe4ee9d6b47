"""Liveness, readiness (naming the failing part) and Prometheus metrics."""

from __future__ import annotations

import httpx

from ains.api.app import create_app
from tests.support.servers import bound_socket, serve
from tests.support.stack import Stack, auth


async def test_health_and_ready_when_everything_is_up(stack: Stack) -> None:
    assert (await stack.http.get("/health")).json() == {"status": "ok"}
    ready = await stack.http.get("/ready")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database"] == "ok" and checks["temporal"] == "ok"
    if stack.settings.redis_url:
        assert checks["redis"] == "ok"


async def test_ready_is_503_naming_temporal_and_redis_when_unreachable(stack: Stack) -> None:
    closed = bound_socket()  # bound but never listening: connections are refused
    dead_port = closed.getsockname()[1]
    settings = stack.settings.model_copy(
        update={"temporal_address": f"127.0.0.1:{dead_port}", "redis_url": f"redis://127.0.0.1:{dead_port}/0"}
    )
    server = await serve(create_app(settings))
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            ready = await http.get("/ready")
            assert ready.status_code == 503
            body = ready.json()
            assert sorted(body["failing"]) == ["redis", "temporal"]
            assert body["checks"]["database"] == "ok"
            assert body["checks"]["temporal"].startswith("failing")
            assert (await http.get("/health")).status_code == 200
            # Without Temporal nothing can start: a clear 503, and no half-created task is left behind.
            key, _ = await stack.new_key()
            before = (await http.get("/v1/tasks", headers=auth(key))).json()["items"]
            submitted = await http.post("/v1/tasks", headers=auth(key), json={"type": "echo"})
            assert submitted.status_code == 503
            assert "Temporal" in submitted.json()["error"]["message"]
            after = (await http.get("/v1/tasks", headers=auth(key))).json()["items"]
            assert before == after == []
    finally:
        await server.stop()
        closed.close()


async def test_metrics_count_requests_latency_and_tasks(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    task = await stack.submit(key, type="echo", required_capabilities=[tag])
    await stack.wait_for(key, task["id"])
    text = (await stack.http.get("/metrics")).text
    assert 'ains_http_requests_total{method="POST",route="/v1/tasks",status="202"}' in text
    assert 'ains_http_request_duration_seconds_bucket{le="0.05",method="GET",route="/v1/tasks/{task_id}"}' in text
    assert 'ains_tasks_created_total{type="echo"}' in text
    succeeded = [line for line in text.splitlines() if line.startswith('ains_tasks{status="succeeded"}')]
    assert succeeded and float(succeeded[0].split()[-1]) >= 1
    assert any(line.startswith('ains_tasks{status="failed"}') for line in text.splitlines())
