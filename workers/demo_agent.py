"""The demo agent shipped with AINS, built on the agent SDK (``sdk.agent``): a small HTTP agent a fresh install
can route its first task to.

``POST /run`` does simple text work chosen by the task type (echo, uppercase, word_count, summarize,
reverse); ``input.delay_seconds`` (up to 60) makes a call take that long. ``/fail`` always answers 500 and
``/hang`` never answers in time: register them as agents to see re-routing, failure and timeout handling.
Every call is checked against the AINS request signature (and refused when replayed); a call delivered again
for the same task and attempt is answered from its first run. ``GET /calls`` counts deliveries per
``<task>:<attempt>`` (for at-least-once checks).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException

from ains.models.agent_calls import AgentCallPayload
from ains.sdk.agent import Agent
from ains.sdk.agent_http import verified_call

DEMO_AGENT_ID = "demo-agent"
DEMO_CAPABILITIES = ["echo", "uppercase", "word_count", "summarize", "reverse"]
HANG_SECONDS = 3600
# `input.delay_seconds` up to this long makes /run answer late (for timeout and long-call checks).
MAX_DELAY_SECONDS = 300
Verified = Annotated[AgentCallPayload, Depends(verified_call)]


def _text_of(task_input: dict[str, Any]) -> str:
    value = task_input.get("text", "")
    return value if isinstance(value, str) else json.dumps(value)


async def _delay(task_input: dict[str, Any]) -> None:
    delay = task_input.get("delay_seconds")
    if isinstance(delay, int | float) and 0 < delay <= MAX_DELAY_SECONDS:
        await asyncio.sleep(delay)


def build_demo_agent(signing_secret: str) -> Agent:
    agent = Agent(DEMO_AGENT_ID, signing_secret=signing_secret, display_name="Demo agent", max_concurrency=50)

    @agent.capability("echo")
    async def echo(task_input: dict[str, Any]) -> dict[str, Any]:
        await _delay(task_input)
        return task_input

    @agent.capability("uppercase")
    async def uppercase(task_input: dict[str, Any]) -> dict[str, Any]:
        await _delay(task_input)
        return {"text": _text_of(task_input).upper()}

    @agent.capability("reverse")
    async def reverse(task_input: dict[str, Any]) -> dict[str, Any]:
        await _delay(task_input)
        return {"text": _text_of(task_input)[::-1]}

    @agent.capability("word_count")
    async def word_count(task_input: dict[str, Any]) -> dict[str, Any]:
        await _delay(task_input)
        return {"words": len(_text_of(task_input).split())}

    @agent.capability("summarize")
    async def summarize(task_input: dict[str, Any]) -> dict[str, Any]:
        await _delay(task_input)
        sentences = re.split(r"(?<=[.!?])\s+", _text_of(task_input).strip())
        return {"summary": sentences[0] if sentences and sentences[0] else ""}

    return agent


def create_demo_agent(signing_secret: str, **app_options: Any) -> FastAPI:
    """The demo agent's ASGI app; ``app_options`` go to ``Agent.app`` (registration, heartbeats)."""
    agent = build_demo_agent(signing_secret)
    app: FastAPI = agent.app(**app_options)

    @app.get("/calls")
    async def call_counts() -> dict[str, int]:
        """How often each task attempt reached this agent (for at-least-once checks)."""
        return dict(agent.deliveries)

    @app.post("/fail")
    async def fail(_: Verified) -> dict[str, Any]:
        raise HTTPException(500, "demo failure")

    @app.post("/hang")
    async def hang(_: Verified) -> dict[str, Any]:
        await asyncio.sleep(HANG_SECONDS)
        return {}

    return app
