"""Registry bookkeeping run as local activities of TaskWorkflow: cheap, and far lighter on the Temporal server."""

from __future__ import annotations

from temporalio import activity

from core.attempts import record_attempt, set_task_status
from core.db import Database
from core.routing import route_attempt
from models.workflow_io import AttemptRecord, RouteDecision, RouteRequest, TaskStatusUpdate


class RegistryActivities:
    def __init__(self, db: Database) -> None:
        self._db = db

    @activity.defn(name="route_task")
    async def route_task(self, request: RouteRequest) -> RouteDecision:
        async with self._db.transaction() as session:
            return await route_attempt(session, request)

    @activity.defn(name="record_attempt")
    async def record_attempt(self, record: AttemptRecord) -> bool:
        async with self._db.transaction() as session:
            return await record_attempt(session, record)

    @activity.defn(name="set_task_status")
    async def set_task_status(self, change: TaskStatusUpdate) -> None:
        async with self._db.transaction() as session:
            await set_task_status(session, change)
