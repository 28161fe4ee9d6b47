"""BatchWorkflow: start the task workflows of a batch as children, a chunk at a time, then finish.

Children are abandoned on completion (each task runs on its own); their ids are the usual ``task-<id>``,
so a task of a batch is read, cancelled and retried exactly like any other. A child that already exists
(an idempotent resubmission) is left as it is.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from models.workflow_io import BatchInput, TaskWorkflowInput
    from workflows.children import task_child_options
    from workflows.task_workflow import TaskWorkflow

START_CHUNK = 50


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
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                **task_child_options(task),
            )
        except WorkflowAlreadyStartedError:
            return False
        return True
