"""Hand-over order against a real registry (SQLite, and Postgres when configured): a freed slot goes to
the best-ranked waiting task: priority class (aged by its oldest task), then fair share, then FIFO."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import func, select

from ains.activities.registry import RegistryActivities
from ains.core.composition.batch_queue import queue_ahead
from ains.core.platform.db import Database
from ains.core.platform.settings import Settings
from ains.core.routing.dispatch import DeliveredFlags, Dispatcher
from ains.core.tasks.service import workflow_input
from ains.models.tables import Task, TaskAttempt, TaskWait, utcnow
from ains.models.workflow_io import RouteOutcome, RouteRequest, TaskWorkflowInput
from tests.support.factories import idle_agent, task_row


async def _queued(
    registry: RegistryActivities, db: Database, tag: str, client: str = "c", priority: int = 5, age: float = 0.0
) -> str:
    """A task that routes and finds the agent busy: it joins the dispatch queue."""
    task_id = f"tsk_{uuid.uuid4().hex}"
    row = task_row(task_id, [tag], client_id=client)
    row.priority = priority
    row.created_at = utcnow() - timedelta(seconds=age)
    async with db.transaction() as session:
        session.add(row)
    decision = await registry.route_task(
        RouteRequest(task_id=task_id, attempt=1, required_capabilities=[tag], failed_agent_ids=[])
    )
    assert decision.outcome is RouteOutcome.ALL_BUSY, decision.reason
    return task_id


async def _finish_running(db: Database, agent_id: str) -> None:
    async with db.transaction() as session:
        for attempt in (await session.execute(select(TaskAttempt).where(TaskAttempt.agent_id == agent_id))).scalars():
            attempt.status = "succeeded"


async def _drain(db: Database, dispatcher: Dispatcher, agent_id: str, count: int) -> list[str]:
    """Free the agent's one slot ``count`` times; the tasks it was handed to, in order."""
    order: list[str] = []
    for _ in range(count):
        await _finish_running(db, agent_id)
        handed = await dispatcher.reserve([agent_id])
        assert len(handed) == 1, handed
        order.append(handed[0].task_id)
    return order


def _registry(db: Database, aging: float = 0.0, weights: dict[str, float] | None = None) -> RegistryActivities:
    settings = Settings(priority_aging_seconds=aging, client_weights=weights or {})
    return RegistryActivities(db, None, cache_ttl_seconds=0, settings=settings)


async def test_priority_first_then_first_come_first_served(db: Database) -> None:
    registry = _registry(db)
    await idle_agent(db, "solo", "sum")
    holder = await _queued_or_running(registry, db, "sum")
    low = await _queued(registry, db, "sum", priority=2)
    high = await _queued(registry, db, "sum", priority=9)
    mid_first = await _queued(registry, db, "sum", priority=5)
    mid_second = await _queued(registry, db, "sum", priority=5)
    assert holder
    order = await _drain(db, Dispatcher(db, None, Settings(priority_aging_seconds=0.0)), "solo", 4)
    assert order == [high, mid_first, mid_second, low]
    async with db.session() as session:
        assert (await session.execute(select(func.count()).select_from(TaskWait))).scalar_one() == 0
        started = (await session.execute(select(Task).where(Task.id == high))).scalar_one()
    assert started.status == "running" and started.assigned_agent_id == "solo"


async def _queued_or_running(registry: RegistryActivities, db: Database, tag: str) -> str:
    """The first task takes the free slot."""
    task_id = f"tsk_{uuid.uuid4().hex}"
    async with db.transaction() as session:
        session.add(task_row(task_id, [tag]))
    decision = await registry.route_task(
        RouteRequest(task_id=task_id, attempt=1, required_capabilities=[tag], failed_agent_ids=[])
    )
    assert decision.outcome is RouteOutcome.ASSIGNED
    return task_id


async def test_a_low_priority_class_that_waited_long_enough_goes_first(db: Database) -> None:
    registry = _registry(db, aging=1.0)
    await idle_agent(db, "solo", "sum")
    await _queued_or_running(registry, db, "sum")
    fresh_high = await _queued(registry, db, "sum", priority=8)
    old_low = await _queued(registry, db, "sum", priority=1, age=30)  # 1 + 30 levels, capped at 9.5
    order = await _drain(db, Dispatcher(db, None, Settings(priority_aging_seconds=1.0)), "solo", 2)
    assert order == [old_low, fresh_high]


async def test_clients_take_turns_within_a_priority(db: Database) -> None:
    registry = _registry(db)
    await idle_agent(db, "solo", "sum")
    await _queued_or_running(registry, db, "sum")
    heavy = [await _queued(registry, db, "sum", client="heavy") for _ in range(8)]
    light = [await _queued(registry, db, "sum", client="light") for _ in range(3)]
    order = await _drain(db, Dispatcher(db, None, Settings(priority_aging_seconds=0.0)), "solo", 11)
    positions = [order.index(t) for t in light]
    # The light client's tasks were queued behind 8 of the heavy one's, and still each waits at most one
    # heavy turn per turn of its own.
    assert positions == [2, 4, 6], order
    assert [t for t in order if t in heavy] == heavy, "each client's own tasks stay first come, first served"


async def test_a_heavier_weight_gets_more_turns(db: Database) -> None:
    registry = _registry(db, weights={"gold": 3.0})
    await idle_agent(db, "solo", "sum")
    await _queued_or_running(registry, db, "sum")
    plain = [await _queued(registry, db, "sum", client="plain") for _ in range(6)]
    gold = [await _queued(registry, db, "sum", client="gold") for _ in range(6)]
    order = await _drain(db, Dispatcher(db, None, Settings(priority_aging_seconds=0.0)), "solo", 8)
    assert sum(t in gold for t in order) >= 5, order
    assert order[0] == plain[0]


async def test_a_slot_is_never_handed_out_twice(db: Database) -> None:
    registry = _registry(db)
    await idle_agent(db, "pair", "sum", max_concurrency=2)
    await _queued_or_running(registry, db, "sum")
    await _queued_or_running(registry, db, "sum")
    waiting = [await _queued(registry, db, "sum") for _ in range(5)]
    dispatcher = Dispatcher(db, None, Settings(priority_aging_seconds=0.0))
    assert await dispatcher.reserve(["pair"]) == [], "no free slot: nothing handed over"
    await _finish_running(db, "pair")
    first = await dispatcher.reserve(["pair", "pair"])
    again = await dispatcher.reserve(["pair"])
    assert [h.task_id for h in first] == waiting[:2] and again == []
    async with db.session() as session:
        running = (
            await session.execute(
                select(func.count()).where(TaskAttempt.agent_id == "pair", TaskAttempt.status == "running")
            )
        ).scalar_one()
        pending = (
            await session.execute(select(func.count()).where(TaskAttempt.handover_pending.is_(True)))
        ).scalar_one()
    assert running == 2 and pending == 2, "reserved, not yet told"


async def _pending_flags(db: Database) -> int:
    async with db.session() as session:
        count = select(func.count()).where(TaskAttempt.handover_pending.is_(True))
        return int((await session.execute(count)).scalar_one())


async def test_delivered_flags_are_cleared_together_after_their_delay_or_at_a_flush(db: Database) -> None:
    """The worker clears the pending flags of delivered hand-overs in one write a moment later: until then the
    flags stand (a crash leaves them to the reconciler), after it none is left; a flush (the worker stopping)
    clears them at once."""
    registry = _registry(db)
    await idle_agent(db, "trio", "sum", max_concurrency=3)
    for _ in range(3):
        await _queued_or_running(registry, db, "sum")
    for _ in range(3):
        await _queued(registry, db, "sum")
    await _finish_running(db, "trio")
    handed = await Dispatcher(db, None, Settings()).reserve(["trio"])
    assert len(handed) == 3 and await _pending_flags(db) == 3

    later = DeliveredFlags(db, delay=0.3)
    await later.cleared(handed[:1])
    await later.cleared(handed[1:2])
    assert await _pending_flags(db) == 3, "not cleared before the delay"
    await asyncio.sleep(0.8)
    assert await _pending_flags(db) == 1, "both delivered hand-overs cleared together"

    at_stop = DeliveredFlags(db, delay=60)
    await at_stop.cleared(handed[2:])
    await at_stop.flush()
    assert await _pending_flags(db) == 0


async def _batch_rows(db: Database, tag: str, client: str, count: int) -> list[TaskWorkflowInput]:
    rows = [task_row(f"tsk_{uuid.uuid4().hex}", [tag], client_id=client) for _ in range(count)]
    for row in rows:
        row.queue_timeout_seconds = 600
    async with db.transaction() as session:
        session.add_all(rows)
    settings = Settings()
    return [workflow_input(row, settings) for row in rows]


async def test_a_batch_queued_ahead_takes_the_turns_its_tasks_would_take_one_by_one(db: Database) -> None:
    registry = _registry(db, weights={"gold": 2.0})
    await idle_agent(db, "solo", "sum")
    await _queued_or_running(registry, db, "sum")
    plain = [await _queued(registry, db, "sum", client="plain") for _ in range(2)]
    gold = await _batch_rows(db, "sum", "gold", 4)
    ahead = await queue_ahead(db, gold, {"gold": 2.0})
    assert ahead.task_ids == {t.task_id for t in gold} and ahead.free_agent_ids == []
    again = await queue_ahead(db, gold, {"gold": 2.0})  # a retried page keeps every task's place
    assert again.task_ids == ahead.task_ids
    async with db.session() as session:
        waits = {w.task_id: w for w in (await session.execute(select(TaskWait))).scalars()}
        statuses = set((await session.execute(select(Task.status).where(Task.id.in_(ahead.task_ids)))).scalars())
    assert all(waits[t.task_id].start_on_handover for t in gold) and statuses == {"routing"}
    order = await _drain(db, Dispatcher(db, None, Settings(priority_aging_seconds=0.0)), "solo", 6)
    # Tags as one-by-one enqueues give them: plain 1, 2; gold (weight 2) from the frontier 1 in steps of 0.5:
    # 1.5, 2.0 (after plain's 2.0, which came first), 2.5, 3.0.
    gold_ids = [t.task_id for t in gold]
    assert order == [plain[0], gold_ids[0], plain[1], *gold_ids[1:]], order
