"""Record what happened in an attempt: attempt row, agent counters, trust score and its audit record, task status.

All in one transaction and at most once per (task, attempt), so a retried or replayed activity never double-counts.
"""

from __future__ import annotations

import json

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import adaptive as adaptive_state
from core.db import Database
from core.events import emit_tier_change
from core.metrics import observe_task_finished
from models.capabilities import parse_requirement
from models.tables import Agent, AgentCapability, Task, TaskAttempt, TaskWait, TrustRecord, as_utc, utcnow
from models.tasks import TaskStatus
from models.trust import TrustEvent, next_trust
from models.workflow_io import PLATFORM_ERROR, AgentCallResult, AttemptRecord, CallOutcome, TaskStatusUpdate

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


async def _apply_tag_trust(session: AsyncSession, agent_id: str, tags: list[str], event: TrustEvent) -> None:
    """Per-capability trust for each tag the task required, by the same rules as the overall score."""
    if not tags:
        return
    rows = await session.execute(
        select(AgentCapability)
        .where(AgentCapability.agent_id == agent_id, AgentCapability.tag.in_(tags))
        .with_for_update()
    )
    for cap in rows.scalars():
        cap.trust_score = next_trust(cap.trust_score, event, cap.successful_tasks, cap.total_tasks)
        cap.total_tasks += 1
        if event is TrustEvent.SUCCESS:
            cap.successful_tasks += 1


async def _apply_trust(session: AsyncSession, record: AttemptRecord, tags: list[str]) -> None:
    agent = (
        await session.execute(select(Agent).where(Agent.id == record.agent_id).with_for_update())
    ).scalar_one_or_none()
    if agent is None:  # deregistered while the call ran; nothing left to score
        return
    outcome = record.result.outcome
    event = _EVENT_FOR_OUTCOME[outcome]
    before = agent.trust_score
    after = next_trust(before, event, agent.successful_tasks, agent.total_tasks)
    agent.trust_score = after
    agent.total_tasks += 1
    if outcome is CallOutcome.SUCCESS:
        agent.successful_tasks += 1
        previous = agent.avg_response_ms
        duration = record.result.duration_ms
        agent.avg_response_ms = (
            duration if previous is None else (previous + RESPONSE_TIME_EMA_WEIGHT * (duration - previous))
        )
    elif outcome is CallOutcome.FAILURE:
        agent.failed_tasks += 1
    else:
        agent.timed_out_tasks += 1
    await _apply_tag_trust(session, agent.id, tags, event)
    reason = "agent call succeeded" if outcome is CallOutcome.SUCCESS else (record.result.error or outcome.value)
    session.add(
        TrustRecord(
            agent_id=agent.id,
            task_id=record.task_id,
            attempt=record.attempt,
            event_type=event.value,
            score_before=before,
            score_after=after,
            delta=round(after - before, 6),
            reason=reason[:2000],
            created_at=utcnow(),
        )
    )
    # Delivered when the task finishes (the workflow dispatches pending deliveries then).
    await emit_tier_change(session, agent.id, before, after, task_id=record.task_id, reason=reason[:500])


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
    """Apply ``record``; False when it had already been applied (a retry or replay)."""
    already = await session.execute(
        select(TrustRecord.id).where(TrustRecord.task_id == record.task_id, TrustRecord.attempt == record.attempt)
    )
    attempt = await session.get(TaskAttempt, (record.task_id, record.attempt))
    if already.first() is not None or (attempt is not None and attempt.status != "running"):
        return False
    now = utcnow()
    if attempt is not None:
        attempt.status = _ATTEMPT_STATUS[record.result.outcome]
        attempt.finished_at = now
        attempt.duration_ms = record.result.duration_ms
        attempt.error = record.result.error
    task = await session.get(Task, record.task_id)
    tags = sorted({parse_requirement(r).tag for r in task.required_capabilities}) if task else []
    if moves_trust(record.result):
        await _apply_trust(session, record, tags)
        await adaptive_state.observe_attempt(session, record, task, tags)  # core/adaptive.py
    if task is not None and not TaskStatus(task.status).is_final:
        task.status = record.task_status
        task.status_reason = record.status_reason
        task.updated_at = now
        if record.result.outcome is CallOutcome.SUCCESS:
            task.result = attempt.output if record.result.output_stored and attempt else record.result.output
            task.error = None
            task.error_code = None
        else:
            task.error = record.result.error
            task.error_code = record.result.error_code or record.error_code
        if TaskStatus(record.task_status).is_final:
            task.completed_at = now
            observe_task_finished(
                task.type, record.task_status, (now - (as_utc(task.created_at) or now)).total_seconds()
            )
    if attempt is not None:
        attempt.output = None  # moved to the task's result, or not wanted by a task that had already finished
    await session.flush()
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
    task.status = status.value
    task.status_reason = change.reason
    task.updated_at = now
    if change.error_code:
        task.error_code = change.error_code
        task.error = change.reason
    if status.is_final:
        task.completed_at = now
        observe_task_finished(task.type, status.value, (now - (as_utc(task.created_at) or now)).total_seconds())
        # A cancelled or abandoned task releases the slot its running attempt held, and leaves the queue.
        released = await session.execute(
            update(TaskAttempt)
            .where(TaskAttempt.task_id == change.task_id, TaskAttempt.status == "running")
            .values(status="cancelled", finished_at=now, handover_pending=False)
            .returning(TaskAttempt.agent_id)
        )
        agents = [agent_id for (agent_id,) in released]
        await session.execute(delete(TaskWait).where(TaskWait.task_id == change.task_id))
        await session.flush()
        return agents
    await session.flush()
    return []
