"""Long-running agent calls finished through the API (Temporal asynchronous activity completion).

An agent that answered a call with 202 heartbeats and completes it here with the call's completion token.
The answer becomes the ``call_agent`` activity's result exactly as if the agent had answered synchronously, so
the task's workflow records, re-routes and scores it the same way.
"""

from __future__ import annotations

import base64
import binascii

from temporalio.client import AsyncActivityCancelledError, AsyncActivityHandle, Client
from temporalio.service import RPCError, RPCStatusCode

from ains.core.platform.db import Database
from ains.core.platform.errors import InvalidInput, NotFound, Unavailable
from ains.core.tasks.attempts import by_reference_if_large
from ains.models.agent_calls import AgentCallCompletion, AgentCallHeartbeat, AgentCallHeartbeatAnswer
from ains.models.workflow_io import AgentCallResult, CallOutcome

GONE = "this call is no longer awaited: it finished, timed out, or its task was cancelled"


def encode_token(task_token: bytes) -> str:
    return base64.urlsafe_b64encode(task_token).decode().rstrip("=")


def _handle(temporal: Client, token: str) -> AsyncActivityHandle:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise InvalidInput("token is not a completion token (url-safe base64)") from None
    return temporal.get_async_activity_handle(task_token=raw)


def _mapped(exc: RPCError) -> Exception:
    if exc.status == RPCStatusCode.NOT_FOUND:
        return NotFound(GONE)
    if exc.status == RPCStatusCode.INVALID_ARGUMENT:
        return InvalidInput(f"token is not a valid completion token: {exc.message}")
    return Unavailable(f"Temporal refused the call: {exc.message}")


async def heartbeat(temporal: Client, beat: AgentCallHeartbeat) -> AgentCallHeartbeatAnswer:
    """Keep the call alive; tells the agent when the task was cancelled (the call then ends as cancelled)."""
    handle = _handle(temporal, beat.token)
    try:
        await handle.heartbeat(*([] if beat.details is None else [beat.details]))
    except AsyncActivityCancelledError:
        try:
            await handle.report_cancellation()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise _mapped(exc) from exc
        return AgentCallHeartbeatAnswer(cancelled=True)
    except RPCError as exc:
        raise _mapped(exc) from exc
    return AgentCallHeartbeatAnswer(cancelled=False)


async def complete(db: Database, temporal: Client, completion: AgentCallCompletion) -> None:
    """Hand the agent's answer (or failure) to the waiting workflow, like a synchronous answer."""
    handle = _handle(temporal, completion.token)
    if completion.output is not None:
        result = AgentCallResult(
            outcome=CallOutcome.SUCCESS, output=completion.output, duration_ms=completion.duration_ms
        )
        result = await by_reference_if_large(db, completion.task_id, completion.attempt, result)
    else:
        result = AgentCallResult(
            outcome=CallOutcome.FAILURE, error=f"agent failed: {completion.error}", duration_ms=completion.duration_ms
        )
    try:
        await handle.complete(result)
    except RPCError as exc:
        raise _mapped(exc) from exc
