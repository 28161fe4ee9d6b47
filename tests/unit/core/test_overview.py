"""The dashboard's own registry queries (core/overview.py) on every backend: per-minute buckets are computed
in the database, so SQLite's text timestamps and Postgres' timestamptz must both land in the right minute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ains.core.overview import agent_attempts, capacity_by_capability, queue, task_attempts, throughput
from ains.core.platform.db import Database
from ains.models.tables import Agent, AgentCapability, TaskAttempt
from tests.support.factories import task_row

NOW = datetime.now(UTC).replace(second=30, microsecond=0)


async def _seed(db: Database) -> None:
    async with db.transaction() as session:
        for agent_id, status, limit in (("a1", "available", 4), ("a2", "unavailable", 6), ("a3", "available", 2)):
            session.add(
                Agent(id=agent_id, display_name=agent_id, endpoint_url="http://x", max_concurrency=limit, status=status)
            )
        await session.flush()
        session.add_all(
            [
                AgentCapability(agent_id="a1", tag="summarize"),
                AgentCapability(agent_id="a2", tag="summarize"),
                AgentCapability(agent_id="a3", tag="translate"),
            ]
        )
        rows = []
        # (client, status, minutes ago: created, given to an agent, finished)
        for i, (client, status, created_ago, started_ago, done_ago) in enumerate(
            [
                ("c", "succeeded", 10, 10, 9),
                ("c", "succeeded", 10, 8, 7),  # waited two minutes for an agent
                ("c", "failed", 5, 5, 4),
                ("other", "succeeded", 5, None, 4),
                ("c", "routing", 3, None, None),
                ("c", "pending", 2, None, None),
                ("c", "running", 1, 1, None),
                ("c", "succeeded", 90, 90, 89),  # outside the hour
            ]
        ):
            row = task_row(f"t{i}", ["summarize"], client_id=client, status=status)
            row.created_at = NOW - timedelta(minutes=created_ago)
            row.started_at = None if started_ago is None else NOW - timedelta(minutes=started_ago)
            row.completed_at = None if done_ago is None else NOW - timedelta(minutes=done_ago)
            rows.append(row)
        session.add_all(rows)
        await session.flush()
        session.add_all(
            [
                TaskAttempt(task_id="t6", attempt=1, agent_id="a1", status="running", started_at=NOW),
                TaskAttempt(
                    task_id="t2",
                    attempt=1,
                    agent_id="a1",
                    status="failed",
                    started_at=NOW - timedelta(minutes=5),
                    finished_at=NOW - timedelta(minutes=4),
                    error="boom",
                ),
                TaskAttempt(
                    task_id="t2", attempt=2, agent_id="a3", status="failed", started_at=NOW - timedelta(minutes=4)
                ),
                TaskAttempt(
                    task_id="t3", attempt=1, agent_id="a1", status="succeeded", started_at=NOW - timedelta(minutes=6)
                ),
            ]
        )


async def test_throughput_counts_each_minute_by_status_for_the_caller(db: Database) -> None:
    await _seed(db)
    async with db.session() as session:
        mine = await throughput(session, "c", now=NOW)
        everyone = await throughput(session, None, now=NOW)
    assert len(mine.minutes) == 60 and mine.minutes[-1] == NOW.strftime("%H:%M")
    assert mine.minutes[-10] == (NOW - timedelta(minutes=9)).strftime("%H:%M")
    assert mine.finished["succeeded"][-10] == mine.finished["succeeded"][-8] == 1
    assert sum(mine.finished["succeeded"]) == 2
    assert mine.finished["failed"][-5] == 1
    assert sum(mine.submitted) == 6 and mine.submitted[-11] == 2  # the 90-minute-old task is outside
    assert mine.success_rate == 2 / 3
    # Waiting for a first agent at the end of each minute, newest last: t4 from 3 min ago, t5 from 2 min ago,
    # t1 during the minutes 10 and 9 ago; the others were given an agent within the minute they came in.
    assert mine.waiting[-12:] == [0, 1, 1, 0, 0, 0, 0, 0, 1, 2, 2, 2]
    assert sum(mine.waiting[:-12]) == 0
    assert everyone.waiting[-1] == 2  # "other"'s task left the queue unrouted when it finished
    assert sum(everyone.finished["succeeded"]) == 3 and everyone.success_rate == 3 / 4


async def test_queue_capacity_and_attempts(db: Database) -> None:
    await _seed(db)
    async with db.session() as session:
        waiting = await queue(session, "c")
        theirs = await queue(session, "other")
        loads = {load.tag: load for load in await capacity_by_capability(session)}
        attempts = await task_attempts(session, "t2")
        of_agent = await agent_attempts(session, "a1", None)
        of_agent_for_other = await agent_attempts(session, "a1", "other")
    assert (waiting.pending, waiting.routing, waiting.depth) == (1, 1, 2)
    assert waiting.oldest_created_at == NOW - timedelta(minutes=3)
    assert theirs.depth == 0 and theirs.oldest_created_at is None
    # summarize: a1 (available, 4 slots, 1 running) and a2 (unavailable: no capacity)
    assert (loads["summarize"].running, loads["summarize"].capacity) == (1, 4)
    assert (loads["summarize"].agents, loads["summarize"].available_agents) == (2, 1)
    assert (loads["translate"].running, loads["translate"].capacity) == (0, 2)  # its attempt is not running
    assert [(a.attempt, a.agent_id, a.error) for a in attempts] == [(1, "a1", "boom"), (2, "a3", None)]
    assert [a.task_id for a in of_agent] == ["t6", "t2", "t3"]  # newest first
    assert [a.task_id for a in of_agent_for_other] == ["t3"]
