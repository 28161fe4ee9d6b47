"""The demo agent shipped with AINS: a small HTTP agent a fresh install can route its first task to.

``POST /run`` does simple text work chosen by the task type (echo, uppercase, word_count, summarize,
reverse). ``/fail`` always answers 500 and ``/hang`` never answers in time: register them as agents to see
re-routing, failure and timeout handling. Every call is checked against the AINS request signature.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from typing import Any

from fastapi import FastAPI, HTTPException, Request

from core.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify

DEMO_CAPABILITIES = ["echo", "uppercase", "word_count", "summarize", "reverse"]
HANG_SECONDS = 3600
# `input.delay_seconds` up to this long makes /run answer late (for timeout and long-call checks).
MAX_DELAY_SECONDS = 300


def _text_of(payload: dict[str, Any]) -> str:
    value = payload.get("input", {}).get("text", "")
    return value if isinstance(value, str) else json.dumps(value)


def _perform(task_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    text = _text_of(payload)
    match task_type:
        case "echo":
            return {"output": payload.get("input", {})}
        case "uppercase":
            return {"output": {"text": text.upper()}}
        case "reverse":
            return {"output": {"text": text[::-1]}}
        case "word_count":
            return {"output": {"words": len(text.split())}}
        case "summarize":
            sentences = re.split(r"(?<=[.!?])\s+", text.strip())
            return {"output": {"summary": sentences[0] if sentences and sentences[0] else ""}}
    raise HTTPException(400, f"demo agent cannot do task type {task_type!r}; try one of {DEMO_CAPABILITIES}")


def create_demo_agent(signing_secret: str | None = None) -> FastAPI:
    app = FastAPI(title="AINS demo agent")
    calls: Counter[str] = Counter()

    async def _accept(request: Request) -> dict[str, Any]:
        body = await request.body()
        if signing_secret is not None and not verify(
            signing_secret, body, request.headers.get(TIMESTAMP_HEADER), request.headers.get(SIGNATURE_HEADER)
        ):
            raise HTTPException(401, "bad or stale AINS signature")
        payload: dict[str, Any] = json.loads(body)
        calls[f"{payload.get('task_id')}:{payload.get('attempt')}"] += 1
        return payload

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/calls")
    async def call_counts() -> dict[str, int]:
        """How often each task attempt reached this agent (for at-least-once checks)."""
        return dict(calls)

    @app.post("/run")
    async def run(request: Request) -> dict[str, Any]:
        payload = await _accept(request)
        delay = payload.get("input", {}).get("delay_seconds")
        if isinstance(delay, int | float) and 0 < delay <= MAX_DELAY_SECONDS:
            await asyncio.sleep(delay)
        return _perform(str(payload.get("type", "")), payload)

    @app.post("/fail")
    async def fail(request: Request) -> dict[str, Any]:
        await _accept(request)
        raise HTTPException(500, "demo failure")

    @app.post("/hang")
    async def hang(request: Request) -> dict[str, Any]:
        await _accept(request)
        await asyncio.sleep(HANG_SECONDS)
        return {}

    return app
