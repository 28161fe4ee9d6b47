"""Registry bookkeeping run as local activities of TaskWorkflow: cheap, and far lighter on the Temporal server."""

from __future__ import annotations

import logging

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError

from core.attempts import record_attempt, set_task_status
from core.db import Database
from core.dependencies import dependency_state, waiting_dependents
from core.dispatch import Dispatcher
from core.events import emit_task_event
from core.routing import CandidateCache, RouteStep, SlotTaken, route_attempt
from core.settings import Settings
from models.workflow_io import (
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

log = logging.getLogger("ains.registry")

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
        self._dispatcher = Dispatcher(db, client, self._settings.priority_aging_seconds)

    async def _route_once(self, request: RouteRequest) -> RouteStep:
        for _ in range(ROUTE_RACE_RETRIES):
            try:
                async with self._db.transaction() as session:
                    return await route_attempt(session, request, self._cache, self._settings.client_weights)
            except SlotTaken:
                continue  # rolled back; the next try reads the load that includes the other decision
        reason = f"the free slots went to concurrent decisions {ROUTE_RACE_RETRIES} times in a row"
        return RouteStep(RouteDecision(outcome=RouteOutcome.ALL_BUSY, reason=reason), [])

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
            # Queued and committed: route once more, so a slot freed by a releaser that dispatched before this
            # task's row was visible is not missed (the releaser committed before dispatching).
            step = await self._route_once(request.model_copy(update={"queued": True}))
        if not step.free_agent_ids:
            return step.decision
        handed = await self._dispatcher.release(step.free_agent_ids, source="routing", keep=request.task_id)
        mine = next((h.assignment for h in handed if h.task_id == request.task_id), None)
        if mine is None:
            return step.decision
        return RouteDecision(
            outcome=RouteOutcome.ASSIGNED,
            agent_id=mine.agent_id,
            endpoint_url=mine.endpoint_url,
            reason=mine.reason,
            agent_kind=mine.agent_kind,
        )

    @activity.defn(name="finish_attempt")
    async def finish_attempt(self, record: AttemptRecord) -> FinishResult:
        """Record the attempt (trust, status), hand the freed slot over, and when the task is done notify its
        dependents and emit its event: one local activity where there used to be four."""
        async with self._db.transaction() as session:
            applied = await record_attempt(session, record)
        await self._dispatcher.release([record.agent_id], source="attempt")
        done = await self._after_final(record.task_id, record.task_status) if record.final else True
        return FinishResult(applied=applied, followups_done=done)

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
        return FinishResult(applied=True, followups_done=await self._after_final(finish.task_id, finish.status))

    async def _after_final(self, task_id: str, status: str) -> bool:
        """Notify dependents and emit the event; False when either failed (the workflow then runs them as
        separate local activities with their own retries)."""
        try:
            await self._notify(task_id)
            if self._client is not None:
                await emit_task_event(self._db, self._client, self._settings, task_id, status)
        except Exception as exc:  # Temporal or the DB unavailable: left to the workflow's fallback
            log.warning("follow-ups of task %s not done here: %s", task_id, exc)
            return False
        return True

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
        return await self._notify(request.task_id)

    async def _notify(self, task_id: str) -> int:
        """Signal every unfinished task waiting on this one (run after its final status is committed).

        A dependent whose workflow has not started yet misses the signal, but its own first check reads the
        committed status, so no wake-up is lost.
        """
        if self._client is None:
            return 0
        async with self._db.session() as session:
            workflow_ids = await waiting_dependents(session, task_id)
        notified = 0
        for workflow_id in workflow_ids:
            try:
                await self._client.get_workflow_handle(workflow_id).signal(DEPENDENCY_FINISHED_SIGNAL, task_id)
                notified += 1
            except RPCError:  # not started yet, or already finished: see the docstring
                continue
        return notified


DEPENDENCY_FINISHED_SIGNAL = "dependency_finished"
SLOT_FREED_SIGNAL = "slot_freed"
