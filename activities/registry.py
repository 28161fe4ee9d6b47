"""Registry bookkeeping run as local activities of TaskWorkflow: cheap, and far lighter on the Temporal server."""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError

from core.attempts import record_attempt, set_task_status
from core.db import Database
from core.dependencies import dependency_state, waiting_dependents
from core.routing import CandidateCache, SlotTaken, next_waiting_workflows, route_attempt
from models.workflow_io import (
    AttemptRecord,
    DependencyState,
    DependentsRequest,
    RouteDecision,
    RouteOutcome,
    RouteRequest,
    TaskStatusUpdate,
    WakeRequest,
)

SLOT_FREED_SIGNAL = "slot_freed"
ROUTE_RACE_RETRIES = 3
DEPENDENCY_FINISHED_SIGNAL = "dependency_finished"


class RegistryActivities:
    def __init__(self, db: Database, client: Client | None = None, cache_ttl_seconds: float = 0.0) -> None:
        self._db = db
        self._client = client
        self._cache = CandidateCache(cache_ttl_seconds) if cache_ttl_seconds > 0 else None

    @activity.defn(name="route_task")
    async def route_task(self, request: RouteRequest) -> RouteDecision:
        if self._cache is not None and self._cache.due:
            # Outside the write transaction: on SQLite that holds the database's one write lock, and a full
            # reload of a large registry should not keep every other writer waiting.
            async with self._db.session() as session:
                await self._cache.refresh(session)
        for _ in range(ROUTE_RACE_RETRIES):
            try:
                async with self._db.transaction() as session:
                    return await route_attempt(session, request, self._cache)
            except SlotTaken:
                continue  # rolled back; the next try reads the load that includes the other decision
        return RouteDecision(
            outcome=RouteOutcome.ALL_BUSY,
            reason=f"the free slots went to concurrent decisions {ROUTE_RACE_RETRIES} times in a row",
        )

    @activity.defn(name="record_attempt")
    async def record_attempt(self, record: AttemptRecord) -> bool:
        async with self._db.transaction() as session:
            return await record_attempt(session, record)

    @activity.defn(name="set_task_status")
    async def set_task_status(self, change: TaskStatusUpdate) -> None:
        async with self._db.transaction() as session:
            await set_task_status(session, change)

    @activity.defn(name="wake_waiting_task")
    async def wake_waiting_task(self, request: WakeRequest) -> str | None:
        """Signal the best-ranked tasks waiting for this agent, one per free slot, so they need not poll.

        Returns the first workflow signalled (the result type is kept for workflow histories recorded before).
        """
        if self._client is None:
            return None
        async with self._db.session() as session:
            workflow_ids = await next_waiting_workflows(session, request.agent_id, request.priority_aging_seconds)
        signalled: list[str] = []
        for workflow_id in workflow_ids:
            try:
                await self._client.get_workflow_handle(workflow_id).signal(SLOT_FREED_SIGNAL)
                signalled.append(workflow_id)
            except RPCError:  # it finished meanwhile; its own polling covers any other case
                continue
        return signalled[0] if signalled else None

    @activity.defn(name="check_dependencies")
    async def check_dependencies(self, request: DependentsRequest) -> DependencyState:
        async with self._db.session() as session:
            return await dependency_state(session, request.task_id)

    @activity.defn(name="notify_dependents")
    async def notify_dependents(self, request: DependentsRequest) -> int:
        """Signal every unfinished task waiting on this one (run after its final status is committed).

        A dependent whose workflow has not started yet misses the signal, but its own first check reads the
        committed status, so no wake-up is lost.
        """
        if self._client is None:
            return 0
        async with self._db.session() as session:
            workflow_ids = await waiting_dependents(session, request.task_id)
        notified = 0
        for workflow_id in workflow_ids:
            try:
                await self._client.get_workflow_handle(workflow_id).signal(DEPENDENCY_FINISHED_SIGNAL, request.task_id)
                notified += 1
            except RPCError:  # not started yet, or already finished: see the docstring
                continue
        return notified
