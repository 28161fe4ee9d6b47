"""BatchWorkflow: start the task workflows of a batch as children, a chunk at a time, then finish.

Children are abandoned on completion (each task runs on its own); their ids are the usual ``task-<id>``,
so a task of a batch is read, cancelled and retried exactly like any other. A child that already exists
(an idempotent resubmission) is left as it is.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import Priority, SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from core.settings import ORCHESTRATION_QUEUE
    from models import search_attributes as sa
    from models.priority import priority_key
    from models.workflow_io import BatchInput, TaskWorkflowInput
    from workflows.task_workflow import TaskWorkflow

START_CHUNK = 50
TASK_EXECUTION_TIMEOUT = timedelta(days=2)


@workflow.defn(name="BatchWorkflow")
class BatchWorkflow:
    @workflow.run
    async def run(self, batch: BatchInput) -> int:
        started = 0
        for begin in range(0, len(batch.tasks), START_CHUNK):
            chunk = batch.tasks[begin : begin + START_CHUNK]
            results = await asyncio.gather(*(self._start(task) for task in chunk))
            started += sum(results)
            workflow.set_current_details(f"started {started} of {len(batch.tasks)} task(s)")
        return started

    async def _start(self, task: TaskWorkflowInput) -> bool:
        try:
            await workflow.start_child_workflow(
                TaskWorkflow.run,
                task,
                id=f"task-{task.task_id}",
                task_queue=ORCHESTRATION_QUEUE,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                execution_timeout=TASK_EXECUTION_TIMEOUT,
                priority=Priority(priority_key=priority_key(task.priority)),
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.CLIENT_ID, task.client_id),
                        SearchAttributePair(sa.TASK_TYPE, task.task_type),
                        SearchAttributePair(sa.PRIORITY, task.priority),
                        SearchAttributePair(sa.STATUS, "pending"),
                    ]
                ),
                static_summary=f"{task.task_type} task {task.task_id} (priority {task.priority})",
            )
        except WorkflowAlreadyStartedError:
            return False
        return True
