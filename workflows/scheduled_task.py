"""ScheduledTaskWorkflow: what a Temporal Schedule starts on every firing (and trigger / backfill).

It submits the schedule's task through the same core function as POST /v1/tasks (so each run is a task
with its own id and ``schedule_id``), then waits for the task to finish: the schedule's overlap policy
therefore applies to whole task runs. Cancelling the run (overlap policy cancel_other) cancels its task.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from ains.activities.schedules import ScheduleActivities
    from ains.models.contract import SCHEDULED_WORKFLOW_NAME
    from ains.models.schedules import AwaitTaskRequest, ScheduledRunInput, ScheduledRunResult, ScheduledSubmit

SUBMIT_TIMEOUT = timedelta(seconds=30)
SUBMIT_SCHEDULE_TO_CLOSE = timedelta(minutes=30)
SUBMIT_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=30))
AWAIT_HEARTBEAT_TIMEOUT = timedelta(seconds=30)
AWAIT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
CANCEL_TIMEOUT = timedelta(seconds=30)
CANCEL_SCHEDULE_TO_CLOSE = timedelta(minutes=10)
CANCEL_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=10))


@workflow.defn(name=SCHEDULED_WORKFLOW_NAME)
class ScheduledTaskWorkflow:
    @workflow.run
    async def run(self, params: ScheduledRunInput) -> ScheduledRunResult:
        submitted = await workflow.execute_local_activity_method(
            ScheduleActivities.submit_scheduled_task,
            ScheduledSubmit(
                schedule_id=params.schedule_id, client_id=params.client_id, run_id=workflow.info().workflow_id
            ),
            start_to_close_timeout=SUBMIT_TIMEOUT,
            schedule_to_close_timeout=SUBMIT_SCHEDULE_TO_CLOSE,
            retry_policy=SUBMIT_RETRY,
        )
        if submitted.task_id is None or submitted.workflow_id is None:
            raise ApplicationError(f"the scheduled task was not submitted: {submitted.error}", non_retryable=True)
        workflow.set_current_details(f"task `{submitted.task_id}`")
        request = AwaitTaskRequest(task_id=submitted.task_id, workflow_id=submitted.workflow_id)
        try:
            status = await workflow.execute_activity_method(
                ScheduleActivities.await_task,
                request,
                start_to_close_timeout=timedelta(seconds=submitted.timeout_seconds),
                heartbeat_timeout=AWAIT_HEARTBEAT_TIMEOUT,
                retry_policy=AWAIT_RETRY,
                summary=f"wait for task {submitted.task_id}",
            )
        except (asyncio.CancelledError, ActivityError) as err:
            if isinstance(err, ActivityError) and not isinstance(err.cause, CancelledError):
                raise
            await workflow.execute_local_activity_method(
                ScheduleActivities.cancel_task,
                request,
                start_to_close_timeout=CANCEL_TIMEOUT,
                schedule_to_close_timeout=CANCEL_SCHEDULE_TO_CLOSE,
                retry_policy=CANCEL_RETRY,
            )
            raise
        return ScheduledRunResult(task_id=submitted.task_id, status=status)
