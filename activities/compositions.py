"""Chain and plan bookkeeping, run as local activities of CompositionWorkflow."""

from __future__ import annotations

from temporalio import activity

from ains.core.composition.chains import prepare_step, save_state
from ains.core.platform.db import Database
from ains.core.platform.settings import Settings
from ains.models.workflow_io import CompositionState, PreparedStep, PrepareStepRequest


class CompositionActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    @activity.defn(name="prepare_step")
    async def prepare_step(self, request: PrepareStepRequest) -> PreparedStep:
        return await prepare_step(self._db, self._settings, request)

    @activity.defn(name="save_composition_state")
    async def save_composition_state(self, state: CompositionState) -> None:
        async with self._db.transaction() as session:
            await save_state(session, state)
