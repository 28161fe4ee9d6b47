"""Registry bookkeeping run as local activities of TaskWorkflow: cheap, and far lighter on the Temporal server."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client

from ains.core.platform.db import Database
from ains.core.platform.settings import Settings
from ains.core.routing.decide import RouteStep, SlotTaken, choose, route_attempt
from ains.core.routing.snapshot import CandidateCache
from ains.core.tasks.attempt_finish import AttemptFinisher
from ains.core.tasks.attempts import record_attempt, set_task_status
from ains.core.tasks.dependencies import dependency_state
from ains.models.workflow_io import (
    AttemptRecord,
    DependencyState,
    DependentsRequest,
    FinishResult,
    RouteDecision,
    RouteOutcome,
    RouteRequest,
    TaskFinish,
    TaskStatusUpdate,
    WakeRequest,
)

ROUTE_RACE_RETRIES = 3


class RegistryActivities:
    def __init__(
        self,
        db: Database,
        client: Client | None = None,
        cache_ttl_seconds: float = 0.0,
        settings: Settings | None = None,
    ) -> None:
        self._db = db
        self._client = client
        self._settings = settings or Settings()
        self._cache = CandidateCache(cache_ttl_seconds) if cache_ttl_seconds > 0 else None
        self._finisher = AttemptFinisher(db, client, self._settings)
        self._dispatcher = self._finisher.dispatcher

    async def _route_once(self, request: RouteRequest) -> RouteStep:
        for _ in range(ROUTE_RACE_RETRIES):
            try:
                async with self._db.transaction() as session:
                    return await route_attempt(session, request, self._cache, self._settings.client_weights)
            except SlotTaken:
                continue  # rolled back; the next try reads the load that includes the other decision
        reason = f"the free slots went to concurrent decisions {ROUTE_RACE_RETRIES} times in a row"
        return RouteStep(RouteDecision(outcome=RouteOutcome.ALL_BUSY, reason=reason), [])

    async def _slot_free_now(self, request: RouteRequest) -> bool:
        """Whether an agent that could take the task has a free slot now (reads only)."""
        async with self._db.session() as session:
            return (await choose(session, request, self._cache)).evaluation.winner is not None

    @activity.defn(name="route_task")
    async def route_task(self, request: RouteRequest) -> RouteDecision:
        """Assign an agent to the attempt, or queue the task up for a hand-over (then it waits for a signal)."""
        if self._cache is not None and self._cache.due:
            # Outside the write transaction: on SQLite that holds the database's one write lock, and a full
            # reload of a large registry should not keep every other writer waiting.
            async with self._db.session() as session:
                await self._cache.refresh(session)
        step = await self._route_once(request)
        if step.decision.outcome is RouteOutcome.ALL_BUSY and not step.free_agent_ids and not request.queued:
            # Queued and committed: look once more, so a slot freed by a releaser that dispatched before this
            # task's row was visible is not missed (the releaser committed before dispatching). A read, without
            # the write lock; only a slot that is free now calls for a second routing step.
            queued = request.model_copy(update={"queued": True})
            if await self._slot_free_now(queued):
                step = await self._route_once(queued)
        if not step.free_agent_ids:
            return step.decision
        handed = await self._dispatcher.release(step.free_agent_ids, source="routing", keep=request.task_id)
        mine = next((h.assignment for h in handed if h.task_id == request.task_id), None)
        if mine is None:
            return step.decision
        return mine.as_decision()

    @activity.defn(name="finish_attempt")
    async def finish_attempt(self, record: AttemptRecord) -> FinishResult:
        """Record the attempt (trust, status), hand the freed slot over, and when the task is done notify its
        dependents and emit its event (for calls that did not record themselves: core.tasks.attempt_finish)."""
        return await self._finisher.finish(record)

    @activity.defn(name="finish_task")
    async def finish_task(self, finish: TaskFinish) -> FinishResult:
        """A final status outside an attempt outcome (no agent, cancelled): record it, hand over the slot it
        held (a reservation made for it just before), notify dependents, emit the event."""
        async with self._db.transaction() as session:
            released = await set_task_status(
                session,
                TaskStatusUpdate(
                    task_id=finish.task_id, status=finish.status, reason=finish.reason, error_code=finish.error_code
                ),
            )
        if released:
            await self._dispatcher.release(released, source="finish")
        done = await self._finisher.after_final(finish.task_id, finish.status)
        return FinishResult(applied=True, followups_done=done)

    @activity.defn(name="record_attempt")
    async def record_attempt(self, record: AttemptRecord) -> bool:
        async with self._db.transaction() as session:
            return await record_attempt(session, record)

    @activity.defn(name="set_task_status")
    async def set_task_status(self, change: TaskStatusUpdate) -> None:
        async with self._db.transaction() as session:
            released = await set_task_status(session, change)
        if released:
            await self._dispatcher.release(released, source="finish")

    @activity.defn(name="wake_waiting_task")
    async def wake_waiting_task(self, request: WakeRequest) -> str | None:
        """Kept for runs recorded before hand-over dispatch: hands this agent's free slots over."""
        await self._dispatcher.release([request.agent_id], source="attempt")
        return None

    @activity.defn(name="check_dependencies")
    async def check_dependencies(self, request: DependentsRequest) -> DependencyState:
        async with self._db.session() as session:
            return await dependency_state(session, request.task_id)

    @activity.defn(name="notify_dependents")
    async def notify_dependents(self, request: DependentsRequest) -> int:
        return await self._finisher.notify(request.task_id)
