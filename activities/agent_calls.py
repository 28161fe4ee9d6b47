"""Calling an HTTP agent for one attempt of a task.

The agent's own failures (HTTP errors, refused connections, its timeout) are *results*, returned to the
workflow, which re-routes. Only infrastructure failures (this worker dying) make Temporal retry the
activity: the heartbeat stops, the heartbeat timeout fires, and another worker repeats the call with the
same task id and attempt number, which agents can use to deduplicate.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from temporalio import activity

from core.agent_completion import encode_token
from core.attempts import by_reference_if_large
from core.db import Database
from core.signing import signed_headers
from models.agent_calls import ACCEPTED_LATER, COMPLETION_TOKEN_HEADER, HEARTBEAT_TIMEOUT_HEADER
from models.tables import Task
from models.workflow_io import AgentCallRequest, AgentCallResult, CallOutcome

MAX_RESPONSE_BYTES = 2_000_000
ERROR_BODY_CHARS = 300


class AgentCallActivities:
    def __init__(self, db: Database, http: httpx.AsyncClient, signing_secret: str, heartbeat_interval: float) -> None:
        self._db = db
        self._http = http
        self._secret = signing_secret
        self._heartbeat_interval = heartbeat_interval

    async def _heartbeat_until_done(self, call: asyncio.Task[AgentCallResult]) -> None:
        while not call.done():
            activity.heartbeat()
            await asyncio.wait({call}, timeout=self._heartbeat_interval)

    @activity.defn(name="call_agent")
    async def call_agent(self, request: AgentCallRequest) -> AgentCallResult:
        async with self._db.session() as session:
            task = await session.get(Task, request.task_id)
        if task is None:
            return AgentCallResult(outcome=CallOutcome.FAILURE, error="task no longer exists", duration_ms=0.0)
        body = json.dumps(
            {"task_id": task.id, "attempt": request.attempt, "type": task.type, "input": task.input},
            separators=(",", ":"),
        ).encode()
        call = asyncio.create_task(self._post(request, body))
        try:
            await self._heartbeat_until_done(call)
        finally:
            if not call.done():  # cancelled by the workflow or the worker shutting down
                call.cancel()
        return await by_reference_if_large(self._db, request.task_id, request.attempt, call.result())

    async def _post(self, request: AgentCallRequest, body: bytes) -> AgentCallResult:
        headers = {
            "Content-Type": "application/json",
            "X-AINS-Task-Id": request.task_id,
            "X-AINS-Attempt": str(request.attempt),
            **signed_headers(self._secret, body),
            **_completion_headers(),
        }
        started = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        try:
            async with asyncio.timeout(request.timeout_seconds):
                response = await self._http.post(request.endpoint_url, content=body, headers=headers)
        except TimeoutError:
            return AgentCallResult(
                outcome=CallOutcome.TIMEOUT,
                error=f"agent did not answer within {request.timeout_seconds}s",
                duration_ms=elapsed(),
            )
        except httpx.HTTPError as exc:
            return AgentCallResult(
                outcome=CallOutcome.FAILURE,
                error=f"agent unreachable: {type(exc).__name__}: {exc}".rstrip(": "),
                duration_ms=elapsed(),
            )
        if response.status_code == ACCEPTED_LATER:  # the agent finishes later through /v1/agent-calls
            activity.raise_complete_async()
        if response.status_code >= 300:
            return AgentCallResult(
                outcome=CallOutcome.FAILURE,
                error=f"agent answered HTTP {response.status_code}: {response.text[:ERROR_BODY_CHARS]}",
                duration_ms=elapsed(),
            )
        return _parse_output(response, elapsed())


def _completion_headers() -> dict[str, str]:
    """What an agent needs to accept the call (202) and complete it later through the API."""
    info = activity.info()
    timeout = info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 0.0
    return {COMPLETION_TOKEN_HEADER: encode_token(info.task_token), HEARTBEAT_TIMEOUT_HEADER: f"{timeout:g}"}


def _parse_output(response: httpx.Response, duration_ms: float) -> AgentCallResult:
    if len(response.content) > MAX_RESPONSE_BYTES:
        return AgentCallResult(
            outcome=CallOutcome.FAILURE,
            error=f"agent response is {len(response.content)} bytes; the limit is {MAX_RESPONSE_BYTES}",
            duration_ms=duration_ms,
        )
    try:
        payload: Any = response.json() if response.content else {}
    except ValueError:
        return AgentCallResult(
            outcome=CallOutcome.FAILURE,
            error=f"agent answered with invalid JSON: {response.text[:ERROR_BODY_CHARS]}",
            duration_ms=duration_ms,
        )
    output = payload if isinstance(payload, dict) else {"value": payload}
    return AgentCallResult(outcome=CallOutcome.SUCCESS, output=output, duration_ms=duration_ms)
