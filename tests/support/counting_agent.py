"""An HTTP agent on 127.0.0.1 that counts the calls it holds at once, and what a task's history shows."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from tests.support.servers import RunningServer, serve
from tests.support.stack import Stack


class CountingAgent:
    """An HTTP agent that answers after ``delay`` seconds (or the input's ``delay_seconds``; 500 when the input
    says ``fail``) and records how many calls it held at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.in_flight = 0
        self.most_at_once = 0
        self.started: list[str] = []
        self.started_at: dict[str, float] = {}
        self.server: RunningServer | None = None

    async def _run(self, request: Request) -> JSONResponse:
        payload: dict[str, Any] = json.loads(await request.body())
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)
        self.started.append(payload["task_id"])
        self.started_at[payload["task_id"]] = time.monotonic()
        try:
            await asyncio.sleep(payload["input"].get("delay_seconds", self.delay))
        finally:
            self.in_flight -= 1
        if payload["input"].get("fail"):
            return JSONResponse({"error": "asked to fail"}, status_code=500)
        return JSONResponse({"output": payload["input"]})

    async def __aenter__(self) -> CountingAgent:
        self.server = await serve(Starlette(routes=[Route("/run", self._run, methods=["POST"])]))
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        await self.server.stop()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/run"


async def register_counting_agent(stack: Stack, url: str, max_concurrency: int) -> tuple[str, str]:
    """Registers the agent at ``url`` with a capability tag unique to the caller; returns (agent_id, tag)."""
    return await stack.register_agent(max_concurrency=max_concurrency, endpoint_url=url)


# The local activities that route an attempt: route_task, and route_and_call (runs from ROUTED_CALLS on).
ROUTING_ACTIVITIES = (b"route_task", b"route_and_call")


def is_routing_marker(event: HistoryEvent) -> bool:
    """Whether the history event is the marker of a routing step."""
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return False
    details = event.marker_recorded_event_attributes.details
    return "data" in details and any(name in details["data"].payloads[0].data for name in ROUTING_ACTIVITIES)


async def route_markers_and_signals(stack: Stack, workflow_id: str) -> tuple[int, int]:
    client = await stack.temporal()
    routes = signals = 0
    async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
        if is_routing_marker(event):
            routes += 1
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            if event.workflow_execution_signaled_event_attributes.signal_name == "slot_assigned":
                signals += 1
    return routes, signals


async def hold_slot(stack: Stack, key: str, tag: str, seconds: float) -> str:
    """Submit a task that holds one of the agent's slots for ``seconds`` (its call sleeps); returns its id once
    it runs."""
    task = await stack.submit(
        key, required_capabilities=[tag], queue_timeout_seconds=120, input={"delay_seconds": seconds}
    )
    await stack.wait_for(key, task["id"], {"running"})
    return str(task["id"])
