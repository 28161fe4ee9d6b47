"""Calling an LLM agent for one attempt of a task, on the llm task queue.

Like HTTP agent calls, the model's failures (every deployment failed, timed out, or the budget refused
the call) are *results* for the workflow, which re-routes. The budget reservation is keyed by task and
attempt, so a retry of this activity (a lost worker) neither reserves nor books the call twice.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from temporalio import activity

from ains.core.llm.providers import LlmCallFailed
from ains.core.llm.service import CallContext, LlmService
from ains.core.platform.errors import AinsError, BudgetExceeded
from ains.core.tasks.attempt_finish import AttemptFinisher, recorded_result
from ains.core.tasks.attempts import by_reference_if_large
from ains.models.llm import DEFAULT_PROMPT_TEMPLATE
from ains.models.tables import Agent, Task, TaskAttempt
from ains.models.workflow_io import AgentCallRequest, AgentCallResult, CallOutcome

CANCEL_GRACE_SECONDS = 5.0


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        raise KeyError(key)


def render_prompt(template: str | None, task_type: str, task_input: dict[str, Any]) -> str:
    """``template`` with {type}, {input_json} and the input's top-level keys; ValueError names a bad key."""
    values: dict[str, Any] = {k: v for k, v in task_input.items() if isinstance(k, str)}
    values.update(type=task_type, input_json=json.dumps(task_input, indent=2, sort_keys=True))
    try:
        return (template or DEFAULT_PROMPT_TEMPLATE).format_map(_Missing(values))
    except KeyError as exc:
        raise ValueError(f"prompt template uses {{{exc.args[0]}}}, which the task input does not have") from exc
    except (ValueError, IndexError, AttributeError) as exc:
        raise ValueError(f"prompt template is invalid: {exc}") from exc


def answer_output(content: str, metadata: dict[str, Any]) -> dict[str, Any]:
    output: dict[str, Any] = {"text": content, "llm": metadata}
    try:
        parsed = json.loads(content)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        output["data"] = parsed
    return output


class LlmCallActivities:
    def __init__(self, service: LlmService, heartbeat_interval: float, finisher: AttemptFinisher | None = None) -> None:
        self._service = service
        self._heartbeat_interval = heartbeat_interval
        self._finisher = finisher

    @activity.defn(name="call_llm")
    async def call_llm(self, request: AgentCallRequest) -> AgentCallResult:
        """The call, recorded in this activity when the request asks for it (AttemptFinisher.finish_call)."""
        async with self._service.db.session() as session:
            task = await session.get(Task, request.task_id)
            agent = await session.get(Agent, request.agent_id)
            attempt = await session.get(TaskAttempt, (request.task_id, request.attempt))
        if request.record and task is not None and attempt is not None:
            recorded = recorded_result(attempt.status, attempt.error, attempt.duration_ms, task.error_code)
            if recorded is not None:
                return recorded  # a retry after the worker that recorded this attempt died: never call twice
        result = await self._call(request, task, agent)
        return result if self._finisher is None else await self._finisher.finish_call(request, result)

    async def _call(self, request: AgentCallRequest, task: Task | None, agent: Agent | None) -> AgentCallResult:
        started = time.perf_counter()

        def result(outcome: CallOutcome, error: str, code: str | None = None) -> AgentCallResult:
            ms = round((time.perf_counter() - started) * 1000, 3)
            return AgentCallResult(outcome=outcome, error=error, duration_ms=ms, error_code=code)

        if task is None:
            return result(CallOutcome.FAILURE, "task no longer exists")
        if agent is None or agent.kind != "llm" or not agent.model_group:
            return result(CallOutcome.FAILURE, f"agent {request.agent_id} is not an llm agent")
        try:
            prompt = render_prompt(agent.prompt_template, task.type, task.input)
        except ValueError as exc:
            return result(CallOutcome.FAILURE, str(exc))
        ctx = CallContext(
            call_id=f"task:{task.id}:{request.attempt}",
            client_id=task.client_id,
            task_id=task.id,
            attempt=request.attempt,
            agent_id=agent.id,
        )
        call = asyncio.create_task(
            self._service.complete(ctx, agent.model_group, [{"role": "user", "content": prompt}])
        )
        try:
            async with asyncio.timeout(request.timeout_seconds):
                while not call.done():
                    activity.heartbeat()
                    await asyncio.wait({call}, timeout=self._heartbeat_interval)
        except TimeoutError:
            return result(
                CallOutcome.TIMEOUT,
                f"llm agent did not answer within {request.timeout_seconds}s (the task's timeout_seconds)",
            )
        finally:
            if not call.done():
                call.cancel()  # the service releases the reservation on cancellation
                await asyncio.wait({call}, timeout=CANCEL_GRACE_SECONDS)
        try:
            answer = call.result()
        except BudgetExceeded as exc:
            return result(CallOutcome.FAILURE, exc.message, BudgetExceeded.code)
        except LlmCallFailed as exc:
            return result(CallOutcome.TIMEOUT if exc.timeout else CallOutcome.FAILURE, exc.message)
        except AinsError as exc:  # e.g. the agent names a model group that is not configured
            return result(CallOutcome.FAILURE, exc.message)
        ms = round((time.perf_counter() - started) * 1000, 3)
        success = AgentCallResult(
            outcome=CallOutcome.SUCCESS, output=answer_output(answer.content, answer.metadata()), duration_ms=ms
        )
        return await by_reference_if_large(self._service.db, request.task_id, request.attempt, success)
