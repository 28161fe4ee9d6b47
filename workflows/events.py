"""Workflow-side helper that emits a task's final event (called from TaskWorkflow._on_finished)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ains.activities.webhooks import EventActivities
    from ains.models.events import TaskEventRequest

EMIT_PATCH = "ains-emit-task-events"
EMIT_TIMEOUT = timedelta(seconds=30)
EMIT_SCHEDULE_TO_CLOSE = timedelta(minutes=10)
EMIT_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=10))


async def emit_task_event(task_id: str, status: str) -> None:
    """Record and dispatch the task.* event. A failure here is logged; it never changes the task's outcome."""
    if not workflow.patched(EMIT_PATCH):  # histories recorded before events existed replay unchanged
        return
    try:
        await workflow.execute_local_activity_method(
            EventActivities.emit_task_event,
            TaskEventRequest(task_id=task_id, status=status),
            start_to_close_timeout=EMIT_TIMEOUT,
            schedule_to_close_timeout=EMIT_SCHEDULE_TO_CLOSE,
            retry_policy=EMIT_RETRY,
        )
    except ActivityError as err:
        workflow.logger.warning("could not emit the event of task %s: %s", task_id, err.cause or err)
