"""BatchWorkflow: start the task workflows of a batch, a page at a time, then finish.

The API starts this workflow *before* it commits the batch's rows, then signals ``batch_recorded``: every
committed row therefore has a workflow that will start it, even if the API dies between the commit and the
signal (the workflow then reads the registry once its wait runs out). Its input holds ids only; an activity
reads each page of rows and starts their task workflows concurrently, so payloads and history stay small
whatever the batch holds.

Task workflows are independent runs with the usual ``task-<id>`` ids (read, cancelled and retried like any
other task). A task whose workflow already exists (an idempotent resubmission) is left as it is.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from ains.models.contract import BATCH_RECORDED_SIGNAL, BATCH_WORKFLOW_NAME, task_start_options
    from ains.models.workflow_io import BatchInput, BatchPage, BatchPageResult, TaskWorkflowInput
    from ains.workflows.task_workflow import TaskWorkflow

START_ACTIVITY = "start_batch_tasks"
# Rows per activity call; the activity starts a page's workflows concurrently (bounded there).
PAGE_SIZE = 250
# Without a signal and without rows, look again until this long after the start (a very slow commit).
RECORD_DEADLINE = timedelta(minutes=10)
START_TIMEOUT = timedelta(minutes=2)
START_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
LEGACY_START_CHUNK = 50


@workflow.defn(name=BATCH_WORKFLOW_NAME)
class BatchWorkflow:
    def __init__(self) -> None:
        self._recorded: bool | None = None
        self._started = 0  # task workflows started by this run
        self._ensured = 0  # tasks with a run (started now, earlier, or by a retried page) or a place in the queue

    @workflow.signal(name=BATCH_RECORDED_SIGNAL)
    def batch_recorded(self, committed: bool) -> None:
        """The API's word on its transaction: True once the rows are committed, False if it rolled back."""
        self._recorded = committed

    @workflow.run
    async def run(self, batch: BatchInput) -> int:
        """How many of the batch's tasks have their run (running or done) or wait in the dispatch queue for a slot
        that will start it (core.composition.batch_queue) once this run is through."""
        if batch.tasks:
            return await self._run_legacy(batch)
        if batch.new_tasks:
            await self._start_recorded(batch)
        for begin in range(0, len(batch.existing_task_ids), PAGE_SIZE):
            page = batch.existing_task_ids[begin : begin + PAGE_SIZE]
            await self._start_page(BatchPage(batch_id=batch.batch_id, task_ids=page), batch)
        return self._ensured

    async def _start_recorded(self, batch: BatchInput) -> None:
        deadline = workflow.now() + RECORD_DEADLINE
        wait = timedelta(seconds=batch.record_wait_seconds)
        try:
            await workflow.wait_condition(lambda: self._recorded is not None, timeout=wait)
        except TimeoutError:
            workflow.logger.warning("no word from the API on batch %s; reading the registry", batch.batch_id)
        while True:
            if self._recorded is False:
                return
            loaded = await self._start_page(BatchPage(batch_id=batch.batch_id, offset=0, limit=PAGE_SIZE), batch)
            if loaded or self._recorded or workflow.now() >= deadline:
                break
            # Neither rows nor a signal yet: the commit may still be under way.
            try:
                await workflow.wait_condition(lambda: self._recorded is not None, timeout=wait)
            except TimeoutError:
                pass
        offset = loaded
        while loaded == PAGE_SIZE:
            page = BatchPage(batch_id=batch.batch_id, offset=offset, limit=PAGE_SIZE)
            loaded = await self._start_page(page, batch)
            offset += loaded

    async def _start_page(self, page: BatchPage, batch: BatchInput) -> int:
        result: BatchPageResult = await workflow.execute_activity(
            START_ACTIVITY,
            page,
            result_type=BatchPageResult,
            start_to_close_timeout=START_TIMEOUT,
            retry_policy=START_RETRY,
        )
        self._started += result.started
        self._ensured += result.loaded
        total = batch.new_tasks + len(batch.existing_task_ids)
        workflow.set_current_details(
            f"{self._ensured} of {total} task(s) started or queued for a slot ({self._started} started here)"
        )
        return result.loaded

    # --- batches accepted by earlier versions, which carried every task's input -------------------------
    async def _run_legacy(self, batch: BatchInput) -> int:
        started = 0
        for begin in range(0, len(batch.tasks), LEGACY_START_CHUNK):
            chunk = batch.tasks[begin : begin + LEGACY_START_CHUNK]
            results = await asyncio.gather(*(self._start_child(task) for task in chunk))
            started += sum(results)
            workflow.set_current_details(f"started {started} of {len(batch.tasks)} task(s)")
        return started

    async def _start_child(self, task: TaskWorkflowInput) -> bool:
        try:
            await workflow.start_child_workflow(
                TaskWorkflow.run,
                task,
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                **task_start_options(task),
            )
        except WorkflowAlreadyStartedError:
            return False
        return True
