"""Starting the task workflows of a batch, one page of registry rows per call (run by BatchWorkflow)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from ains.core.composition.batch_queue import QueuedAhead, queue_ahead
from ains.core.platform.db import Database
from ains.core.platform.settings import Settings
from ains.core.routing.dispatch import Dispatcher
from ains.core.tasks.dependencies import dependencies_of
from ains.core.tasks.service import workflow_input
from ains.models.contract import TASK_WORKFLOW_NAME, task_start_options
from ains.models.tables import Task
from ains.models.workflow_io import BatchPage, BatchPageResult, TaskWorkflowInput

# Workflow starts in flight at once per page: enough to hide the round trip, few enough to spare the server.
START_CONCURRENCY = 32


class BatchActivities:
    def __init__(self, db: Database, client: Client, settings: Settings) -> None:
        self._db = db
        self._client = client
        self._settings = settings
        self._dispatcher = Dispatcher(db, client, settings)

    @activity.defn(name="start_batch_tasks")
    async def start_batch_tasks(self, page: BatchPage) -> BatchPageResult:
        """Start the workflow of every task of the page that has none yet. Safe to retry: starts are idempotent.

        When the page holds more tasks than their agents have free slots, they join the dispatch queue instead
        and each one's run starts when it is handed a slot (core.composition.batch_queue); the free slots are handed over
        at once. ``loaded`` tasks of the page all have a run or a place in the queue afterwards; ``started`` of
        them got a run from this call.
        """
        inputs = await self._load(page)
        ahead = (
            await queue_ahead(self._db, inputs, self._settings.client_weights)
            if self._settings.batch_queue_ahead
            else QueuedAhead(frozenset(), [])
        )
        if ahead.free_agent_ids:
            await self._dispatcher.release(ahead.free_agent_ids, source="batch")
        gate = asyncio.Semaphore(START_CONCURRENCY)

        async def start(params: TaskWorkflowInput) -> bool:
            async with gate:
                return await self._start(params)

        started = await asyncio.gather(*(start(params) for params in inputs if params.task_id not in ahead.task_ids))
        # Every task of the page now has its run (started here or earlier, say by a retry) or waits in the queue.
        return BatchPageResult(loaded=len(inputs), started=sum(started))

    async def _load(self, page: BatchPage) -> list[TaskWorkflowInput]:
        query = select(Task)
        if page.task_ids:
            query = query.where(Task.id.in_(page.task_ids)).order_by(Task.created_at, Task.id)
        else:
            query = (
                query.where(Task.parent_id == page.batch_id)
                .order_by(Task.created_at, Task.id)
                .offset(page.offset)
                .limit(page.limit)
            )
        async with self._db.session() as session:
            rows = list((await session.execute(query)).scalars())
            depends_on = await dependencies_of(session, [row.id for row in rows])
        return [workflow_input(row, self._settings, depends_on.get(row.id)) for row in rows]

    async def _start(self, params: TaskWorkflowInput) -> bool:
        try:
            await self._client.start_workflow(
                TASK_WORKFLOW_NAME,
                params,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                **task_start_options(params),
            )
        except WorkflowAlreadyStartedError:
            return False
        return True
