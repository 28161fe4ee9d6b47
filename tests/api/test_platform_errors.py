"""Fault attribution: trust moves only for what the agent did. A request body AINS cannot build is a platform
error: the agent is not called, the attempt and task say ``platform_error``, and no trust record is written."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from core.compositions import step_task_id
from models.tables import Agent, Task, TaskAttempt, TrustRecord
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


async def test_a_step_output_that_cannot_be_sent_is_a_platform_error_not_the_agents(stack: Stack) -> None:
    if stack.backend != "sqlite":
        pytest.skip("the poisoned output is stored through SQLite's JSON text column; one backend is enough")
    # Step 1's agent answers with a lone surrogate escape in an answer too large for the workflow history (so
    # it is stored in the registry by reference); the output is merged into step 2's input, which then
    # cannot be encoded as UTF-8 for step 2's agent. The API never accepted the poison: an agent's answer did.
    first_calls: list[dict[str, Any]] = []
    second_calls: list[dict[str, Any]] = []
    poison = b'{"output": {"s": "\\ud800", "pad": "' + b"x" * 300_000 + b'"}}'
    first = await serve(_agent_app(poison, first_calls))
    second = await serve(_agent_app(b'{"output": {"ok": true}}', second_calls))
    try:
        first_id, first_tag = await _register(stack, first)
        second_id, second_tag = await _register(stack, second)
        key, _ = await stack.new_key()
        created = await stack.http.post(
            "/v1/task-chains",
            headers=auth(key),
            json={
                "steps": [
                    {"name": "poison", "type": "score", "required_capabilities": [first_tag], "max_attempts": 1},
                    {"name": "victim", "type": "use", "required_capabilities": [second_tag], "max_attempts": 1},
                ]
            },
        )
        assert created.status_code == 202, created.text
        victim_id = step_task_id(created.json()["id"], "victim")
        # Read from the registry: the poisoned input cannot be serialised into an API response either (the
        # answer that carried it in is an agent's, not something the API accepted).
        task: Task | None = None
        for _ in range(300):
            async with stack.db.session() as session:
                task = await session.get(Task, victim_id)
            if task is not None and task.status in ("succeeded", "failed", "cancelled"):
                break
            await asyncio.sleep(0.1)
        assert task is not None
        assert task.status == "failed" and task.error_code == "platform_error", (task.status, task.error)
        assert task.error is not None and "could not build the request body" in task.error
        assert len(first_calls) == 1 and second_calls == []  # the victim's agent was never called

        async with stack.db.session() as session:
            records = (
                (await session.execute(select(TrustRecord).where(TrustRecord.task_id == victim_id))).scalars().all()
            )
            attempts = (
                (await session.execute(select(TaskAttempt).where(TaskAttempt.task_id == victim_id))).scalars().all()
            )
            agent = await session.get(Agent, second_id)
        assert records == []  # no trust record against the agent that did nothing wrong
        assert [a.status for a in attempts] == ["failed"] and attempts[0].agent_id == second_id
        assert agent is not None and agent.trust_score == 0.5 and agent.total_tasks == 0 and agent.failed_tasks == 0
        assert (await stack.trust(second_id))["records"] == []
        # The agent whose answer was used was scored as usual.
        assert len((await stack.trust(first_id))["records"]) == 1
    finally:
        await first.stop()
        await second.stop()
