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

import aiohttp
from sqlalchemy import and_, bindparam, select
from temporalio import activity

from ains.core.platform.db import Database
from ains.core.platform.json_safety import find_unsafe
from ains.core.platform.outbound_http import Answer, NoConnection, Unreachable, send
from ains.core.platform.signing import signed_headers
from ains.core.tasks.attempt_finish import AttemptFinisher, recorded_result
from ains.core.tasks.attempts import by_reference_if_large
from ains.core.tasks.completion import encode_token
from ains.models.agent_calls import ACCEPTED_LATER, COMPLETION_TOKEN_HEADER, HEARTBEAT_TIMEOUT_HEADER
from ains.models.tables import Task, TaskAttempt
from ains.models.workflow_io import PLATFORM_ERROR, AgentCallRequest, AgentCallResult, CallOutcome

MAX_RESPONSE_BYTES = 2_000_000
ERROR_BODY_CHARS = 300


class AgentCallActivities:
    def __init__(
        self,
        db: Database,
        http: aiohttp.ClientSession,
        signing_secret: str,
        heartbeat_interval: float,
        connect_timeout: float,
        finisher: AttemptFinisher | None = None,
    ) -> None:
        self._db = db
        self._finisher = finisher
        self._http = http
        self._secret = signing_secret
        self._heartbeat_interval = heartbeat_interval
        self._connect_timeout = connect_timeout

    async def _heartbeat_until_done(self, call: asyncio.Task[AgentCallResult]) -> None:
        if activity.info().is_local:  # an inline call: the workflow task's own timeout watches this worker
            await asyncio.wait({call})
            return
        # The first heartbeat goes out after one interval, not at once: a call that answers sooner (most do)
        # costs no heartbeat RPC at all, and the interval is well inside the heartbeat timeout.
        while not call.done():
            await asyncio.wait({call}, timeout=self._heartbeat_interval)
            if not call.done():
                activity.heartbeat()

    @activity.defn(name="call_agent")
    async def call_agent(self, request: AgentCallRequest) -> AgentCallResult:
        async with self._db.session() as session:
            row = (
                await session.execute(_TASK_AND_ATTEMPT, {"b_task": request.task_id, "b_attempt": request.attempt})
            ).first()
        if row is None:
            return AgentCallResult(outcome=CallOutcome.FAILURE, error="task no longer exists", duration_ms=0.0)
        recorded = recorded_result(row.attempt_status, row.attempt_error, row.duration_ms, row.error_code)
        if request.record and recorded is not None:
            return recorded  # a retry after the worker that recorded this attempt died: never call twice
        try:
            body = request_body(request.task_id, request.attempt, row.type, row.input)
        except ValueError as exc:  # our fault, not the agent's: it is never called, and its trust never moves
            return await self._finish(
                request,
                AgentCallResult(
                    outcome=CallOutcome.FAILURE,
                    error=f"AINS could not build the request body for the agent: {exc}",
                    error_code=PLATFORM_ERROR,
                    duration_ms=0.0,
                ),
            )
        call = asyncio.create_task(self._post(request, body))
        try:
            await self._heartbeat_until_done(call)
        finally:
            if not call.done():  # cancelled by the workflow or the worker shutting down
                call.cancel()
        # Shielded: an answer that arrived is recorded and its slot handed over even if this activity is cancelled
        # meanwhile (an inline call reaching its limit, a cancelled task), rather than left half done.
        return await asyncio.shield(
            self._finish(
                request, await by_reference_if_large(self._db, request.task_id, request.attempt, call.result())
            )
        )

    async def _finish(self, request: AgentCallRequest, result: AgentCallResult) -> AgentCallResult:
        return result if self._finisher is None else await self._finisher.finish_call(request, result)

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

        deadline = request.timeout_seconds
        # The task's deadline bounds the whole call; connecting has its own, shorter limit from Settings.
        connect = min(self._connect_timeout, deadline)
        try:
            async with asyncio.timeout(deadline):
                response = await send(
                    self._http,
                    "POST",
                    request.endpoint_url,
                    limit_seconds=deadline,
                    connect_seconds=connect,
                    body=body,
                    headers=headers,
                    max_bytes=MAX_RESPONSE_BYTES,
                )
        except NoConnection:
            return AgentCallResult(
                outcome=CallOutcome.FAILURE,
                error=f"agent unreachable: no connection within {connect:g}s (AINS_AGENT_CONNECT_TIMEOUT_SECONDS)",
                duration_ms=elapsed(),
            )
        except TimeoutError:
            return AgentCallResult(
                outcome=CallOutcome.TIMEOUT,
                error=f"agent did not answer within {deadline}s (the task's timeout_seconds)",
                duration_ms=elapsed(),
            )
        except Unreachable as exc:
            return AgentCallResult(
                outcome=CallOutcome.FAILURE, error=f"agent unreachable: {exc}", duration_ms=elapsed()
            )
        if response.status == ACCEPTED_LATER:  # the agent finishes later through /v1/agent-calls
            if activity.info().is_local:
                return AgentCallResult(
                    outcome=CallOutcome.FAILURE,
                    error=f"agent answered HTTP {ACCEPTED_LATER} to a call without {COMPLETION_TOKEN_HEADER}: a call "
                    "that carries no completion token must be answered within the call",
                    duration_ms=elapsed(),
                )
            activity.raise_complete_async()
        if response.status >= 300:
            return AgentCallResult(
                outcome=CallOutcome.FAILURE,
                error=f"agent answered HTTP {response.status}: {response.text(ERROR_BODY_CHARS)}",
                duration_ms=elapsed(),
            )
        return _parse_output(response, elapsed())


# What the call needs: the task's type and input, and how its attempt stands (recorded already, after a lost
# worker?). Built once: it runs for every call.
_TASK_AND_ATTEMPT = (
    select(
        Task.type,
        Task.input,
        Task.error_code,
        TaskAttempt.status.label("attempt_status"),
        TaskAttempt.error.label("attempt_error"),
        TaskAttempt.duration_ms,
    )
    .outerjoin(TaskAttempt, and_(TaskAttempt.task_id == Task.id, TaskAttempt.attempt == bindparam("b_attempt")))
    .where(Task.id == bindparam("b_task"))
)


def request_body(task_id: str, attempt: int, task_type: str, task_input: dict[str, Any]) -> bytes:
    """The JSON body sent to the agent: standard JSON only (no NaN/Infinity) and valid UTF-8 (no lone
    surrogates), else ValueError (UnicodeEncodeError is one)."""
    document = {"task_id": task_id, "attempt": attempt, "type": task_type, "input": task_input}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _completion_headers() -> dict[str, str]:
    """What an agent needs to accept the call (202) and complete it later through the API; an inline call (a
    local activity) has no task token to complete, so it offers none."""
    info = activity.info()
    if info.is_local:
        return {}
    timeout = info.heartbeat_timeout.total_seconds() if info.heartbeat_timeout else 0.0
    return {COMPLETION_TOKEN_HEADER: encode_token(info.task_token), HEARTBEAT_TIMEOUT_HEADER: f"{timeout:g}"}


def _parse_output(response: Answer, duration_ms: float) -> AgentCallResult:
    if response.too_large:
        return AgentCallResult(
            outcome=CallOutcome.FAILURE,
            error=f"agent response is larger than the limit of {MAX_RESPONSE_BYTES} bytes",
            duration_ms=duration_ms,
        )
    try:
        payload: Any = json.loads(response.body) if response.body else {}
    except ValueError:
        return AgentCallResult(
            outcome=CallOutcome.FAILURE,
            error=f"agent answered with invalid JSON: {response.text(ERROR_BODY_CHARS)}",
            duration_ms=duration_ms,
        )
    output = payload if isinstance(payload, dict) else {"value": payload}
    unsafe = find_unsafe(output)
    if unsafe is not None:  # e.g. a lone surrogate: it could be neither stored, read back nor sent on
        return AgentCallResult(
            outcome=CallOutcome.FAILURE,
            error=f"agent answered with JSON AINS cannot store: {unsafe}",
            duration_ms=duration_ms,
        )
    return AgentCallResult(outcome=CallOutcome.SUCCESS, output=output, duration_ms=duration_ms)
