"""Inline agent calls (models.workflow_io.calls_inline), end to end: an HTTP agent whose mean response time is
known and within AINS_AGENT_INLINE_CALL_MAX_MS is called as a local activity of the workflow task that routed the
attempt, with no activity task; an agent not measured yet is called through the task queue."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.api.enums.v1 import EventType

from ains.models.agent_calls import COMPLETION_TOKEN_HEADER
from tests.support.servers import RunningServer, serve
from tests.support.stack import Stack


@dataclass
class HeaderAgent:
    """Answers each call with its input after the input's ``delay_seconds``, or 202 when the input says
    ``answer_later`` (as a long-running agent would); remembers whether each call carried a completion token,
    and how often each (task, attempt) was delivered."""

    tokens: dict[str, bool] = field(default_factory=dict)
    deliveries: dict[tuple[str, int], int] = field(default_factory=dict)
    server: RunningServer | None = None

    async def _run(self, request: Request) -> JSONResponse:
        payload: dict[str, Any] = json.loads(await request.body())
        self.tokens[payload["task_id"]] = COMPLETION_TOKEN_HEADER in request.headers
        key = (payload["task_id"], payload["attempt"])
        self.deliveries[key] = self.deliveries.get(key, 0) + 1
        await asyncio.sleep(payload["input"].get("delay_seconds", 0))
        if payload["input"].get("answer_later"):
            return JSONResponse({"accepted": True}, status_code=202)
        return JSONResponse({"echo": payload["input"]})

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/run"


@pytest.fixture
async def header_agent() -> AsyncIterator[HeaderAgent]:
    agent = HeaderAgent()
    agent.server = await serve(Starlette(routes=[Route("/run", agent._run, methods=["POST"])]))
    yield agent
    await agent.server.stop()


async def _history(stack: Stack, task_id: str) -> list[Any]:
    client = await stack.temporal()
    return [event async for event in client.get_workflow_handle(f"task-{task_id}").fetch_history_events()]


def _types(events: list[Any]) -> list[int]:
    return [event.event_type for event in events]


@dataclass
class Measured:
    agent_id: str
    tag: str
    key: str
    first_task: str


async def _measured_agent(stack: Stack, agent: HeaderAgent) -> Measured:
    """The agent registered and called once, which measures it, then a wait until routing's snapshot of the
    registry has its time."""
    agent_id, tag = await stack.register_agent(endpoint_url=agent.url)
    key, _ = await stack.new_key()
    task = await stack.submit(key, required_capabilities=[tag], input={"n": 1})
    assert (await stack.wait_for(key, task["id"]))["status"] == "succeeded"
    await asyncio.sleep(stack.settings.routing_cache_ttl_seconds + 0.5)
    return Measured(agent_id, tag, key, str(task["id"]))


async def test_a_measured_fast_agent_is_called_inline_without_an_activity_task(
    stack: Stack, header_agent: HeaderAgent
) -> None:
    measured = await _measured_agent(stack, header_agent)
    agent_id, tag, key, first = measured.agent_id, measured.tag, measured.key, measured.first_task
    # Not measured yet: the first call takes the task queue and offers a completion token.
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED in _types(await _history(stack, first))
    assert header_agent.tokens[first] is True

    second = await stack.submit(key, required_capabilities=[tag], input={"n": 2})
    view = await stack.wait_for(key, second["id"])
    assert view["status"] == "succeeded", view
    assert view["result"] == {"echo": {"n": 2}}
    events = await _history(stack, second["id"])
    types = _types(events)
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED not in types
    assert types.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED) == 1, "routed, called and finished in one step"
    markers = [
        e.marker_recorded_event_attributes.details["data"].payloads[0].data
        for e in events
        if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    assert len(markers) == 1 and b"route_and_call" in markers[0], "routed and called in one local activity"
    # Started, one workflow task (scheduled, started, completed), the marker, the final upsert, completed.
    assert len(events) == 7, [EventType.Name(t) for t in types]
    assert header_agent.tokens[second["id"]] is False, "an inline call has no task token to offer"

    # Recorded like any call: one attempt, trust +0.02 for each success.
    trust = await stack.trust(agent_id)
    assert trust["trust_score"] == pytest.approx(0.55)  # +0.02, then +0.02 and the +0.01 bonus (success rate 1.0)
    assert view["attempts"] == 1


async def test_an_agent_answering_202_to_an_inline_call_fails_the_attempt_with_the_reason(
    stack: Stack, header_agent: HeaderAgent
) -> None:
    measured = await _measured_agent(stack, header_agent)
    key = measured.key

    task = await stack.submit(key, required_capabilities=[measured.tag], input={"answer_later": True}, max_attempts=1)
    view = await stack.wait_for(key, task["id"])
    assert view["status"] == "failed", view
    assert f"answered HTTP 202 to a call without {COMPLETION_TOKEN_HEADER}" in view["error"], view["error"]


async def test_an_inline_call_past_its_limit_is_delivered_again_through_the_queue_and_recorded_once(
    stack: Stack, header_agent: HeaderAgent
) -> None:
    measured = await _measured_agent(stack, header_agent)
    key = measured.key

    task = await stack.submit(key, required_capabilities=[measured.tag], input={"delay_seconds": 4}, max_attempts=1)
    view = await stack.wait_for(key, task["id"])
    assert view["status"] == "succeeded", view
    assert view["result"] == {"echo": {"delay_seconds": 4}}
    types = _types(await _history(stack, task["id"]))
    # Inline first (no activity task), cut at INLINE_CALL_LIMIT (3 s), then the same attempt through the queue.
    assert types.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == 1
    assert types.index(EventType.EVENT_TYPE_MARKER_RECORDED) < types.index(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED)
    assert header_agent.deliveries[(task["id"], 1)] == 2
    assert header_agent.tokens[task["id"]] is True, "the queued delivery offers a completion token again"
    trust = await stack.trust(measured.agent_id)
    assert trust["total_tasks"] == 2, "one trust record per attempt, however often it was delivered"
