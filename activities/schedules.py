"""Activities of a scheduled run: submit the schedule's task like the API does, wait for it, cancel it."""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial

from temporalio import activity

from ains.core.platform.db import Database
from ains.core.platform.errors import AinsError, Conflict, NotFound, Unavailable
from ains.core.platform.settings import Settings
from ains.core.schedules.service import run_idempotency_key, task_budget_seconds
from ains.core.tasks import service as tasks
from ains.core.tasks.start import start_task_workflow
from ains.models.schedules import AwaitTaskRequest, ScheduleCreate, ScheduledSubmit, ScheduledSubmitResult
from ains.models.tables import Schedule, Task

AWAIT_HEARTBEAT_SECONDS = 2.0


class ScheduleActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    @activity.defn(name="submit_scheduled_task")
    async def submit_scheduled_task(self, request: ScheduledSubmit) -> ScheduledSubmitResult:
        """Submit this run's task; the run's workflow id is the idempotency key, so retries reuse the task."""
        async with self._db.session() as session:
            row = await session.get(Schedule, request.schedule_id)
        if row is None:
            return ScheduledSubmitResult(task_id=None, workflow_id=None, error="the schedule was deleted")
        spec = ScheduleCreate.model_validate(row.spec).target.task
        spec = spec.model_copy(update={"idempotency_key": run_idempotency_key(request.run_id)})
        try:
            accepted = await tasks.submit_task(
                self._db,
                self._settings,
                request.client_id,
                spec,
                partial(start_task_workflow, activity.client()),
                schedule_id=request.schedule_id,
            )
        except Unavailable:
            raise  # Temporal or the DB is down: retried by the activity's retry policy
        except AinsError as exc:  # the target is invalid under the current limits: this run fails
            return ScheduledSubmitResult(task_id=None, workflow_id=None, error=f"{exc.code}: {exc.message}")
        return ScheduledSubmitResult(
            task_id=accepted.id,
            workflow_id=accepted.workflow_id,
            timeout_seconds=task_budget_seconds(self._settings, spec.timeout_seconds, spec.max_attempts),
        )

    @activity.defn(name="await_scheduled_task")
    async def await_task(self, request: AwaitTaskRequest) -> str:
        """Wait (heartbeating) until the task's workflow has closed; returns the task's final status."""
        handle = activity.client().get_workflow_handle(request.workflow_id)
        waiter = asyncio.create_task(handle.result())
        try:
            while not waiter.done():
                activity.heartbeat()
                await asyncio.wait({waiter}, timeout=AWAIT_HEARTBEAT_SECONDS)
        finally:
            if not waiter.done():
                waiter.cancel()
        with contextlib.suppress(Exception):  # failed or cancelled task workflows: the row has the outcome
            waiter.result()
        async with self._db.session() as session:
            task = await session.get(Task, request.task_id)
        return task.status if task is not None else "unknown"

    @activity.defn(name="cancel_scheduled_task")
    async def cancel_task(self, request: AwaitTaskRequest) -> None:
        with contextlib.suppress(Conflict, NotFound):
            await tasks.cancel_task(self._db, activity.client(), self._settings, request.task_id, None)
