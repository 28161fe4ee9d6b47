"""Fault attribution: trust moves only for what the agent did. A request body AINS cannot build is a platform
error: the agent is not called, the attempt and task say ``platform_error``, and no trust record is written."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ains.models.tables import Agent, Task, TaskAttempt, TrustRecord
from tests.support.servers import RunningServer, serve
from tests.support.stack import Stack, auth


def _agent_app(answer: bytes, calls: list[dict[str, Any]]) -> Starlette:
    async def run(request: Request) -> Response:
        calls.append(await request.json())
        return Response(answer, media_type="application/json")

    return Starlette(routes=[Route("/run", run, methods=["POST"])])


async def _register(stack: Stack, server: RunningServer) -> tuple[str, str]:
    agent_id, tag = f"agent-{uuid.uuid4().hex[:10]}", f"cap-{uuid.uuid4().hex[:10]}"
    response = await stack.http.post(
        "/v1/agents",
        headers=auth(stack.admin_key),
        json={
            "id": agent_id,
            "display_name": agent_id,
            "endpoint_url": f"{server.url}/run",
            "capabilities": [{"tag": tag}],
        },
    )
    assert response.status_code == 201, response.text
    return agent_id, tag


async def _final(stack: Stack, task_id: str) -> Task:
    """The task's row once final, read from the registry (a poisoned row may not serialise into a response)."""
    for _ in range(300):
        async with stack.db.session() as session:
            task = await session.get(Task, task_id)
        if task is not None and task.status in ("succeeded", "failed", "cancelled", "timed_out"):
            return task
        await asyncio.sleep(0.1)
    raise AssertionError(f"task {task_id} did not finish")


async def test_a_request_body_that_cannot_be_built_is_a_platform_error_not_the_agents(stack: Stack) -> None:
    if stack.backend != "sqlite":
        pytest.skip("the poison is written through SQLite's JSON text column; one backend is enough")
    # The API refuses a lone surrogate, so the poison comes in another way: a task input written straight
    # into the registry (by an older version, a migration, a hand edit) while the task waits for its agent.
    calls: list[dict[str, Any]] = []
    agent = await serve(_agent_app(b'{"output": {"ok": true}}', calls))
    try:
        agent_id, tag = await _register(stack, agent)
        key, _ = await stack.new_key()
        blocker = await stack.submit(
            key, required_capabilities=[tag], input={"delay_seconds": 0}, queue_timeout_seconds=60
        )
        await stack.wait_for(key, blocker["id"])
        async with stack.db.transaction() as session:  # hold the agent's only free slots
            agent_row = await session.get(Agent, agent_id)
            assert agent_row is not None
            agent_row.status = "unavailable"
        await asyncio.sleep(stack.settings.routing_cache_ttl_seconds + 0.5)
        victim = await stack.submit(key, required_capabilities=[tag], max_attempts=1, queue_timeout_seconds=60)
        await stack.wait_for(key, victim["id"], {"routing"})
        async with stack.db.transaction() as session:
            await session.execute(
                text("UPDATE tasks SET input = :poison WHERE id = :id"),
                {"poison": '{"s": "\\ud800"}', "id": victim["id"]},
            )
        response = await stack.http.patch(
            f"/v1/agents/{agent_id}", headers=auth(stack.admin_key), json={"status": "available"}
        )
        assert response.status_code == 200, response.text
        task = await _final(stack, victim["id"])
        assert task.status == "failed" and task.error_code == "platform_error", (task.status, task.error)
        assert task.error is not None and "could not build the request body" in task.error
        assert len(calls) == 1, "only the blocker reached the agent"
        async with stack.db.session() as session:
            records = (
                (await session.execute(select(TrustRecord).where(TrustRecord.task_id == victim["id"]))).scalars().all()
            )
            attempts = (
                (await session.execute(select(TaskAttempt).where(TaskAttempt.task_id == victim["id"]))).scalars().all()
            )
            agent_row = await session.get(Agent, agent_id)
        assert records == [], "no trust record against the agent that did nothing wrong"
        assert [a.status for a in attempts] == ["failed"] and attempts[0].agent_id == agent_id
        assert agent_row is not None and agent_row.total_tasks == 1 and agent_row.failed_tasks == 0
    finally:
        await agent.stop()


async def test_an_agent_answer_that_cannot_be_stored_fails_that_agents_attempt_and_reads_keep_working(
    stack: Stack,
) -> None:
    # A lone surrogate in an answer (small, or large enough to be stored by reference) is the agent's fault:
    # its attempt fails (-0.05) and nothing unreadable reaches the registry.
    for pad in (0, 300_000):
        calls: list[dict[str, Any]] = []
        poison = b'{"output": {"s": "\\ud800", "pad": "' + b"x" * pad + b'"}}'
        agent = await serve(_agent_app(poison, calls))
        try:
            agent_id, tag = await _register(stack, agent)
            key, _ = await stack.new_key()
            task = await stack.submit(key, required_capabilities=[tag], max_attempts=1)
            done = await stack.wait_for(key, task["id"])
            assert done["status"] == "failed" and done["error_code"] == "agent_error", done
            assert "cannot store" in done["status_reason"] and "lone UTF-16 surrogate" in done["status_reason"]
            assert len(calls) == 1
            listed = await stack.http.get("/v1/tasks", headers=auth(key))
            assert listed.status_code == 200 and listed.json()["items"][0]["id"] == task["id"]
            records = (await stack.trust(agent_id))["records"]
            assert [(r["event_type"], round(r["delta"], 6)) for r in records] == [("failure", -0.05)]
        finally:
            await agent.stop()
