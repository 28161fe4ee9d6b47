"""The routing step against a real registry (SQLite, and Postgres when configured): the worker's registry
snapshot follows registrations, updates and deregistrations; live load is always fresh; a replayed routing
step returns the agent it reserved the first time."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select

from ains.activities.registry import RegistryActivities
from ains.core.agents.registry import deregister_agent, update_agent
from ains.core.platform.db import Database
from ains.core.routing.decide import RouteStep, route_attempt
from ains.core.routing.snapshot import CandidateCache
from ains.models.agents import AgentStatus, AgentUpdate, Capability
from ains.models.tables import Agent, RoutingReceipt, Task, TaskAttempt, TaskWait, as_utc, utcnow
from ains.models.workflow_io import RouteOutcome, RouteRequest
from tests.support.factories import idle_agent, task_row

TTL = 0.05


async def new_task(db: Database, tag: str) -> str:
    task_id = f"tsk_{uuid.uuid4().hex}"
    async with db.transaction() as session:
        session.add(task_row(task_id, [tag]))
    return task_id


async def route(db: Database, cache: CandidateCache, task_id: str, tag: str, attempt: int = 1) -> RouteOutcome:
    request = RouteRequest(task_id=task_id, attempt=attempt, required_capabilities=[tag], failed_agent_ids=[])
    async with db.transaction() as session:
        decision = (await route_attempt(session, request, cache)).decision
    return decision.outcome


async def snapshot_ids(db: Database, cache: CandidateCache, tag: str) -> set[str]:
    async with db.session() as session:
        view = await cache.candidates(session, [tag])
    return {c.agent_id for c in view.candidates}


async def test_snapshot_follows_registrations_updates_and_deregistrations(db: Database) -> None:
    cache = CandidateCache(TTL)
    await idle_agent(db, "a1", "sum")
    assert await snapshot_ids(db, cache, "sum") == {"a1"}

    await idle_agent(db, "a2", "sum")
    async with db.transaction() as session:
        await update_agent(session, "a1", AgentUpdate(status=AgentStatus.UNAVAILABLE))
    await asyncio.sleep(TTL * 2)
    async with db.session() as session:
        view = await cache.candidates(session, ["sum"])
    assert {c.agent_id: c.available for c in view.candidates} == {"a1": False, "a2": True}

    async with db.transaction() as session:
        await update_agent(session, "a2", AgentUpdate(capabilities=[Capability(tag="translate", version="2.0")]))
        await deregister_agent(session, "a1")
    await asyncio.sleep(TTL * 2)
    assert await snapshot_ids(db, cache, "sum") == set()
    assert await snapshot_ids(db, cache, "translate") == {"a2"}


async def test_an_agent_registered_after_the_snapshot_is_found_at_once(db: Database) -> None:
    cache = CandidateCache(3600)  # never stale by age: only the check before failing for good can see it
    await idle_agent(db, "old", "sum")
    assert await route(db, cache, await new_task(db, "sum"), "sum") is RouteOutcome.ASSIGNED
    await idle_agent(db, "new", "fresh-tag")
    assert await route(db, cache, await new_task(db, "fresh-tag"), "fresh-tag") is RouteOutcome.ASSIGNED


async def test_live_load_is_read_for_every_decision(db: Database) -> None:
    cache = CandidateCache(3600)
    await idle_agent(db, "solo", "sum", max_concurrency=1)
    first, second = await new_task(db, "sum"), await new_task(db, "sum")
    assert await route(db, cache, first, "sum") is RouteOutcome.ASSIGNED
    assert await route(db, cache, second, "sum") is RouteOutcome.ALL_BUSY, "the one slot is taken"
    async with db.transaction() as session:
        attempt = await session.get(TaskAttempt, (first, 1))
        assert attempt is not None
        attempt.status = "succeeded"
    assert await route(db, cache, second, "sum") is RouteOutcome.ASSIGNED, "the slot is free again"


async def test_a_replayed_routing_step_returns_the_same_agent_and_writes_nothing_new(db: Database) -> None:
    cache = CandidateCache(3600)
    await idle_agent(db, "a", "sum", max_concurrency=1)
    await idle_agent(db, "b", "sum", max_concurrency=1)
    task_id = await new_task(db, "sum")
    request = RouteRequest(task_id=task_id, attempt=1, required_capabilities=["sum"], failed_agent_ids=[])
    async with db.transaction() as session:
        first = (await route_attempt(session, request, cache)).decision
    async with db.transaction() as session:
        again = (await route_attempt(session, request, cache)).decision
    assert first.outcome is again.outcome is RouteOutcome.ASSIGNED
    assert again.agent_id == first.agent_id and again.endpoint_url == first.endpoint_url
    async with db.session() as session:
        attempts = (await session.execute(select(func.count()).select_from(TaskAttempt))).scalar_one()
        receipt = await session.get(RoutingReceipt, (task_id, 1))
        task = await session.get(Task, task_id)
    assert attempts == 1
    assert receipt is not None and receipt.winner_agent_id == first.agent_id and receipt.outcome == "assigned"
    assert task is not None and task.status == "running" and task.assigned_agent_id == first.agent_id
    assert task.started_at is not None


async def test_the_routing_steps_rows_read_back_through_the_models_as_written(db: Database) -> None:
    # The step writes through the driver with hand-written SQL: its timestamps and JSON must be stored in the
    # columns' own formats, or the API and workers (which read through SQLAlchemy) would misread them.
    cache = CandidateCache(3600)
    await idle_agent(db, "w", "sum", max_concurrency=2)
    task_id = await new_task(db, "sum")
    before = utcnow()
    request = RouteRequest(task_id=task_id, attempt=1, required_capabilities=["sum"], failed_agent_ids=[])
    async with db.transaction() as session:
        decision = (await route_attempt(session, request, cache)).decision
    after = utcnow()
    assert decision.outcome is RouteOutcome.ASSIGNED and decision.agent_id == "w"
    async with db.session() as session:
        attempt = await session.get(TaskAttempt, (task_id, 1))
        task = await session.get(Task, task_id)
        agent = await session.get(Agent, "w")
        receipt = await session.get(RoutingReceipt, (task_id, 1))
        since = (await session.execute(select(Agent.id).where(Agent.updated_at >= before))).scalars().all()
    assert attempt is not None and attempt.status == "running" and attempt.agent_id == "w"
    assert before <= as_utc(attempt.started_at) <= after  # type: ignore[operator]
    assert task is not None and task.status == "running" and task.attempts == 1 and task.status_reason is None
    assert as_utc(task.started_at) == as_utc(task.updated_at) == as_utc(attempt.started_at)
    assert agent is not None and as_utc(agent.last_assigned_at) == as_utc(attempt.started_at)
    assert since == ["w"], "a snapshot's delta refresh finds the touched agent by updated_at"
    assert receipt is not None and receipt.strategy == request.strategy and receipt.candidates_total == 1
    assert [c["agent_id"] for c in receipt.candidates] == ["w"] and receipt.candidates[0]["score"] is not None
    assert before <= as_utc(receipt.created_at) <= after  # type: ignore[operator]


async def test_concurrent_decisions_never_fill_an_agent_beyond_its_limit(db: Database) -> None:
    registry = RegistryActivities(db, None, cache_ttl_seconds=3600)
    await idle_agent(db, "pair", "sum", max_concurrency=2)
    task_ids = [await new_task(db, "sum") for _ in range(8)]
    decisions = await asyncio.gather(
        *(
            registry.route_task(
                RouteRequest(task_id=task_id, attempt=1, required_capabilities=["sum"], failed_agent_ids=[])
            )
            for task_id in task_ids
        )
    )
    outcomes = sorted(d.outcome.value for d in decisions)
    assert outcomes == ["all_busy"] * 6 + ["assigned"] * 2, [(d.outcome.value, d.reason) for d in decisions]
    async with db.session() as session:
        running = (
            await session.execute(select(func.count()).select_from(TaskAttempt).where(TaskAttempt.status == "running"))
        ).scalar_one()
    assert running == 2


async def test_round_robin_rotates_within_a_worker_on_its_own_assignments(db: Database) -> None:
    cache = CandidateCache(3600)  # the snapshot never refreshes: only this worker's own records move it
    for name in ("r1", "r2", "r3"):
        await idle_agent(db, name, "sum", max_concurrency=10)
    chosen = []
    for _ in range(6):
        request = RouteRequest(
            task_id=await new_task(db, "sum"),
            attempt=1,
            required_capabilities=["sum"],
            failed_agent_ids=[],
            strategy="round_robin",
        )
        async with db.transaction() as session:
            chosen.append((await route_attempt(session, request, cache)).decision.agent_id)
    assert sorted(chosen[:3]) == ["r1", "r2", "r3"]
    assert chosen[3:] == chosen[:3], "then the same rotation again"


class _SlotFreedAfterQueueing(RegistryActivities):
    """Frees the agent's one slot right after the first routing step committed this task's queue row, as a
    releaser that dispatched just before that row became visible would (it found nobody waiting)."""

    def __init__(self, db: Database, holder: str) -> None:
        super().__init__(db, None, cache_ttl_seconds=3600)
        self._holder = holder
        self.steps = 0

    async def _route_once(self, request: RouteRequest) -> RouteStep:
        step = await super()._route_once(request)
        self.steps += 1
        if self.steps == 1:
            async with self._db.transaction() as session:
                attempt = await session.get(TaskAttempt, (self._holder, 1))
                assert attempt is not None
                attempt.status = "succeeded"
        return step


async def test_a_waiter_looks_again_after_queueing_and_a_busy_agent_costs_no_second_step(db: Database) -> None:
    await idle_agent(db, "solo", "sum", max_concurrency=1)
    holder = await new_task(db, "sum")
    registry = _SlotFreedAfterQueueing(db, holder)

    def request(task_id: str) -> RouteRequest:
        return RouteRequest(task_id=task_id, attempt=1, required_capabilities=["sum"], failed_agent_ids=[])

    assert (await RegistryActivities(db).route_task(request(holder))).outcome is RouteOutcome.ASSIGNED
    # The slot frees between this task's queue row and its second look: it is not left waiting for a hand-over
    # that nobody will make.
    waiter = await new_task(db, "sum")
    decision = await registry.route_task(request(waiter))
    assert decision.outcome is RouteOutcome.ASSIGNED and decision.agent_id == "solo", decision.reason
    assert registry.steps == 2
    # Nothing frees up: the second look is a read, not another routing step, and the task stays queued.
    registry = _SlotFreedAfterQueueing(db, holder="nobody")
    registry.steps = 1  # frees nothing
    third = await new_task(db, "sum")
    assert (await registry.route_task(request(third))).outcome is RouteOutcome.ALL_BUSY
    assert registry.steps == 2, "one routing step"
    async with db.session() as session:
        assert (await session.get(TaskWait, third)) is not None
