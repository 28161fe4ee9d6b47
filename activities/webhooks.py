"""Event emission (local activity of TaskWorkflow) and webhook delivery attempts (webhooks queue)."""

from __future__ import annotations

import aiohttp
from temporalio import activity

from ains.core.platform.db import Database
from ains.core.platform.settings import Settings
from ains.core.webhooks import events
from ains.core.webhooks import service as webhooks
from ains.models.events import TaskEventRequest
from ains.models.webhooks import AttemptRequest, AttemptResult, DeliveryFinish


class EventActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    @activity.defn(name="emit_task_event")
    async def emit_task_event(self, request: TaskEventRequest) -> int:
        """Record the task's final event for its receivers and start their deliveries; idempotent."""
        created = await events.emit_task_event(
            self._db, activity.client(), self._settings, request.task_id, request.status
        )
        return len(created)


class WebhookActivities:
    def __init__(self, db: Database, http: aiohttp.ClientSession, settings: Settings) -> None:
        self._db = db
        self._http = http
        self._settings = settings

    @activity.defn(name="attempt_webhook_delivery")
    async def attempt_delivery(self, request: AttemptRequest) -> AttemptResult:
        return await webhooks.attempt_delivery(self._db, self._http, self._settings, request)

    @activity.defn(name="finish_webhook_delivery")
    async def finish_delivery(self, finish: DeliveryFinish) -> None:
        async with self._db.transaction() as session:
            await webhooks.finish_delivery(session, finish)
