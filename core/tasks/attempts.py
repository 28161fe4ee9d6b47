"""Record what happened in an attempt: attempt row, agent counters, trust score and its audit record, task status.

All in one transaction and at most once per (task, attempt), so a retried or replayed activity never double-counts.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ains.core.platform.db import Database
from ains.core.platform.metrics import observe_task_finished
from ains.core.routing import adaptive as adaptive_state
from ains.core.webhooks.events import emit_tier_change
from ains.models.capabilities import parse_requirement
from ains.models.tables import Agent, AgentCapability, Task, TaskAttempt, TaskWait, TrustRecord, as_utc, utcnow
from ains.models.tasks import TaskStatus
from ains.models.trust import TrustEvent, next_trust
from ains.models.workflow_io import PLATFORM_ERROR, AgentCallResult, AttemptRecord, CallOutcome, TaskStatusUpdate

RESPONSE_TIME_EMA_WEIGHT = 0.2
# Answers larger than this (as JSON) skip the workflow history: Temporal refuses payloads over 2 MB and warns
# from 512 KB, and an answer that big belongs in the registry, where the task's result is kept anyway.
INLINE_OUTPUT_BYTES = 256 * 1024

_EVENT_FOR_OUTCOME = {
    CallOutcome.SUCCESS: TrustEvent.SUCCESS,
    CallOutcome.FAILURE: TrustEvent.FAILURE,
    CallOutcome.TIMEOUT: TrustEvent.TIMEOUT,
}
_ATTEMPT_STATUS = {CallOutcome.SUCCESS: "succeeded", CallOutcome.FAILURE: "failed", CallOutcome.TIMEOUT: "timed_out"}


# error_code of an attempt that failed because of AINS itself (e.g. the request body could not be built),
# not because of the agent: recorded on the attempt and the task, never as a trust record against the agent.


def moves_trust(result: AgentCallResult) -> bool:
    """Trust moves only for what the agent did; a platform error leaves it (and the agent's counters) alone."""
    return result.error_code != PLATFORM_ERROR


# Built once: constructing SQLAlchemy expressions per call costs more than running them (compiled forms are
# cached by SQLAlchemy either way).
_AGENT_FOR_TRUST = (
    select(
        Agent.trust_score,
        Agent.successful_tasks,
        Agent.failed_tasks,
        Agent.timed_out_tasks,
        Agent.total_tasks,
        Agent.avg_response_ms,
    )
    .where(Agent.id == bindparam("b_agent"))
    .with_for_update()
)
_AGENT_TRUST_UPDATE = (
    update(Agent)
    .where(Agent.id == bindparam("b_agent"))
    .values(
        trust_score=bindparam("b_trust"),
        total_tasks=bindparam("b_total"),
        successful_tasks=bindparam("b_successful"),
        failed_tasks=bindparam("b_failed"),
        timed_out_tasks=bindparam("b_timed_out"),
        avg_response_ms=bindparam("b_avg_ms"),
    )
)
_CAPS_FOR_TRUST = (
    select(
        AgentCapability.tag, AgentCapability.trust_score, AgentCapability.successful_tasks, AgentCapability.total_tasks
    )
    .where(
        AgentCapability.agent_id == bindparam("b_agent"), AgentCapability.tag.in_(bindparam("b_tags", expanding=True))
    )
    .with_for_update()
)
_TAG_TRUST_UPDATE = (
    update(AgentCapability)
    .where(AgentCapability.agent_id == bindparam("b_agent"), AgentCapability.tag == bindparam("b_tag"))
    .values(
        trust_score=bindparam("b_trust"),
        total_tasks=bindparam("b_total"),
        successful_tasks=bindparam("b_successful"),
    )
)
_TRUST_RECORD_INSERT = insert(TrustRecord)
_TASK_FOR_RECORD = (
    select(Task.type, Task.status, Task.created_at, Task.required_capabilities, Task.routing_strategy)
    .where(Task.id == bindparam("b_task"))
    .with_for_update()
)
_ATTEMPT_KEY = (TaskAttempt.task_id == bindparam("b_task"), TaskAttempt.attempt == bindparam("b_attempt"))
_STORED_OUTPUT = select(TaskAttempt.output).where(*_ATTEMPT_KEY)
_CLAIM_ATTEMPT = (
    update(TaskAttempt)
    .where(*_ATTEMPT_KEY, TaskAttempt.status == "running")
    .values(
        status=bindparam("b_status"),
        finished_at=bindparam("b_now"),
        duration_ms=bindparam("b_duration"),
        error=bindparam("b_error"),
        output=None,  # moved to the task's result, or not wanted by a task that had already finished
    )
)
_TASK_STATUS: dict[str, Any] = {
    "status": bindparam("b_status"),
    "status_reason": bindparam("b_reason"),
    "updated_at": bindparam("b_now"),
    "completed_at": bindparam("b_completed"),
}
_TASK_SUCCEEDED = (
    update(Task)
    .where(Task.id == bindparam("b_task"))
    .values(
        **_TASK_STATUS, result=bindparam("b_result", type_=Task.__table__.c.result.type), error=None, error_code=None
    )
)
_TASK_ATTEMPT_FAILED = (
    update(Task)
    .where(Task.id == bindparam("b_task"))
    .values(**_TASK_STATUS, error=bindparam("b_error"), error_code=bindparam("b_code"))
)


async def _apply_tag_trust(conn: AsyncConnection, agent_id: str, tags: list[str], event: TrustEvent) -> None:
    """Per-capability trust for each tag the task required, by the same rules as the overall score."""
    if not tags:
        return
    caps = await conn.execute(_CAPS_FOR_TRUST, {"b_agent": agent_id, "b_tags": tags})
    changes = [
        {
            "b_agent": agent_id,
            "b_tag": tag,
            "b_trust": next_trust(trust, event, successful, total),
            "b_total": total + 1,
            "b_successful": successful + (1 if event is TrustEvent.SUCCESS else 0),
        }
        for tag, trust, successful, total in caps
    ]
    if changes:
        await conn.execute(_TAG_TRUST_UPDATE, changes)


async def _apply_trust(session: AsyncSession, conn: AsyncConnection, record: AttemptRecord, tags: list[str]) -> None:
    agent = (await conn.execute(_AGENT_FOR_TRUST, {"b_agent": record.agent_id})).first()
    if agent is None:  # deregistered while the call ran; nothing left to score
        return
    outcome = record.result.outcome
    event = _EVENT_FOR_OUTCOME[outcome]
    before = agent.trust_score
    after = next_trust(before, event, agent.successful_tasks, agent.total_tasks)
    average = agent.avg_response_ms
    if outcome is CallOutcome.SUCCESS:
        duration = record.result.duration_ms
        average = duration if average is None else (average + RESPONSE_TIME_EMA_WEIGHT * (duration - average))
    await conn.execute(
        _AGENT_TRUST_UPDATE,
        {
            "b_agent": record.agent_id,
            "b_trust": after,
            "b_total": agent.total_tasks + 1,
            "b_successful": agent.successful_tasks + (outcome is CallOutcome.SUCCESS),
            "b_failed": agent.failed_tasks + (outcome is CallOutcome.FAILURE),
            "b_timed_out": agent.timed_out_tasks + (outcome is CallOutcome.TIMEOUT),
            "b_avg_ms": average,
        },
    )
    await _apply_tag_trust(conn, record.agent_id, tags, event)
    reason = "agent call succeeded" if outcome is CallOutcome.SUCCESS else (record.result.error or outcome.value)
    await conn.execute(
        _TRUST_RECORD_INSERT,
        {
            "agent_id": record.agent_id,
            "task_id": record.task_id,
            "attempt": record.attempt,
            "event_type": event.value,
            "score_before": before,
            "score_after": after,
            "delta": round(after - before, 6),
            "reason": reason[:2000],
            "created_at": utcnow(),
        },
    )
    # Delivered when the task finishes (the workflow dispatches pending deliveries then).
    await emit_tier_change(session, record.agent_id, before, after, task_id=record.task_id, reason=reason[:500])


async def by_reference_if_large(db: Database, task_id: str, attempt: int, result: AgentCallResult) -> AgentCallResult:
    """``result`` as it is, or, when its output is too large for a workflow history, without the output, which
    waits in the attempt's row for ``record_attempt`` (passed by reference)."""
    if result.output is None or len(json.dumps(result.output, separators=(",", ":"))) <= INLINE_OUTPUT_BYTES:
        return result
    async with db.transaction() as session:
        await session.execute(
            update(TaskAttempt)
            .where(TaskAttempt.task_id == task_id, TaskAttempt.attempt == attempt)
            .values(output=result.output)
        )
    return result.model_copy(update={"output": None, "output_stored": True})


async def record_attempt(session: AsyncSession, record: AttemptRecord) -> bool:
    """Apply ``record``; False when it had already been applied (a retry or replay) or its attempt was cancelled.

    Prebuilt statements on the session's connection, no ORM unit of work: this runs once per attempt on the
    hot path. Locks in the order cancellation takes them (task, then attempt, then agent).
    """
    conn = await session.connection()
    key = {"b_task": record.task_id, "b_attempt": record.attempt}
    task = (await conn.execute(_TASK_FOR_RECORD, key)).first()
    result = record.result
    stored_output = (await conn.execute(_STORED_OUTPUT, key)).scalar_one_or_none() if result.output_stored else None
    now = utcnow()
    claimed = await conn.execute(
        _CLAIM_ATTEMPT,
        {
            **key,
            "b_status": _ATTEMPT_STATUS[result.outcome],
            "b_now": now,
            "b_duration": result.duration_ms,
            "b_error": result.error,
        },
    )
    if claimed.rowcount != 1:  # recorded before, or the task was cancelled and its slot released
        return False
    tags = sorted({parse_requirement(r).tag for r in task.required_capabilities}) if task else []
    if moves_trust(result):
        await _apply_trust(session, conn, record, tags)
        if task is not None:
            await adaptive_state.observe_attempt(
                session, record, task.routing_strategy, tags
            )  # core/routing/adaptive.py
    if task is None or TaskStatus(task.status).is_final:
        return True
    final = TaskStatus(record.task_status).is_final
    status = {
        "b_task": record.task_id,
        "b_status": record.task_status,
        "b_reason": record.status_reason,
        "b_now": now,
        "b_completed": now if final else None,
    }
    if result.outcome is CallOutcome.SUCCESS:
        output = stored_output if result.output_stored else result.output
        await conn.execute(_TASK_SUCCEEDED, {**status, "b_result": output})
    else:
        await conn.execute(
            _TASK_ATTEMPT_FAILED, {**status, "b_error": result.error, "b_code": result.error_code or record.error_code}
        )
    if final:
        observe_task_finished(task.type, record.task_status, (now - (as_utc(task.created_at) or now)).total_seconds())
    return True


async def set_task_status(session: AsyncSession, change: TaskStatusUpdate) -> list[str]:
    """Status changes outside an attempt outcome: waiting for agents, no agent, cancelled.

    A final status is never overwritten, so a late or replayed update cannot resurrect a finished task.
    Returns the agents whose slot the task released (its running attempt, when it reached a final status).
    """
    task = await session.get(Task, change.task_id)
    if task is None or TaskStatus(task.status).is_final:
        return []
    now = utcnow()
    status = TaskStatus(change.status)
    if status.is_final:
        # Leave the queue before the task's row is written: a hand-over locks the waiting row first and the
        # task's row after, so the same order here cannot deadlock with one picking this task (Postgres; it
        # did when a thousand waiting tasks were cancelled at once).
        await session.execute(delete(TaskWait).where(TaskWait.task_id == change.task_id))
    task.status = status.value
    task.status_reason = change.reason
    task.updated_at = now
    if change.error_code:
        task.error_code = change.error_code
        task.error = change.reason
    if status.is_final:
        task.completed_at = now
        observe_task_finished(task.type, status.value, (now - (as_utc(task.created_at) or now)).total_seconds())
        # A cancelled or abandoned task releases the slot its running attempt held (it left the queue above).
        released = await session.execute(
            update(TaskAttempt)
            .where(TaskAttempt.task_id == change.task_id, TaskAttempt.status == "running")
            .values(status="cancelled", finished_at=now, handover_pending=False)
            .returning(TaskAttempt.agent_id)
        )
        agents = [agent_id for (agent_id,) in released]
        await session.flush()
        return agents
    await session.flush()
    return []
