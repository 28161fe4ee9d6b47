"""The dispatch reconciler's activity (core.routing.dispatch.reconcile), run on the orchestration queue."""

from __future__ import annotations

from dataclasses import asdict

from temporalio import activity

from ains.core.platform.db import Database
from ains.core.routing.dispatch import Dispatcher, reconcile
from ains.models.workflow_io import ReconcileInput, ReconcileResult


class DispatchActivities:
    def __init__(self, db: Database, dispatcher: Dispatcher) -> None:
        self._db = db
        self._dispatcher = dispatcher

    @activity.defn(name="reconcile_dispatch")
    async def reconcile_dispatch(self, params: ReconcileInput) -> ReconcileResult:
        repairs = await reconcile(self._dispatcher, self._db, params.after_seconds)
        return ReconcileResult(**asdict(repairs))
