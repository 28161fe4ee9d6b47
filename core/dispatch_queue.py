"""The dispatch queue: tasks waiting for a slot (``task_waits``) and the order a freed slot is handed out in.

``enqueue`` is called by routing (core.routing) in its transaction; ``pick`` by the dispatcher
(core.dispatch) while it holds the releasing agent's row lock. The order itself is models.dispatch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import driver_fetch
from models.capabilities import parse_requirement
from models.dispatch import class_order
from models.routing import Candidate, LiveState, RoutingQuery, Strategy, accepts
from models.tables import Agent, AgentCapability, FairShareClock, TaskAttempt, TaskWait
from models.tasks import WaitingAgent, WaitingView

# Waiting rows read per round while picking for one agent (most are taken; filters may skip some).
PICK_PAGE = 32
PICK_PAGES = 8


@dataclass(frozen=True)
class Waiter:
    """What ``enqueue`` needs to know about the task that waits."""

    task_id: str
    attempt: int
    workflow_id: str
    client_id: str
    priority: int
    requirements: list[str]
    min_trust: float | None
    excluded_agent_ids: list[str]
    failed_agent_ids: list[str]
    created: float


# One statement per backend: the conflict update takes the client's row lock, so concurrent tasks of one
# client get distinct, increasing tags (a read-then-write would hand several of them the same turn).
_NEXT_TAG = (
    "INSERT INTO fair_share_clocks (client_id, vtag) VALUES ({client}, {base} + {step}) "
    "ON CONFLICT (client_id) DO UPDATE SET vtag = {greatest}(fair_share_clocks.vtag, {base}) + {step} RETURNING vtag"
)
_NEXT_TAG_POSTGRES = _NEXT_TAG.format(client="$1", base="$2::float8", step="$3::float8", greatest="greatest")
_NEXT_TAG_SQLITE = (
    "INSERT INTO fair_share_clocks (client_id, vtag) VALUES (?1, ?2 + ?3) "
    "ON CONFLICT (client_id) DO UPDATE SET vtag = max(fair_share_clocks.vtag, ?2) + ?3 RETURNING vtag"
)


async def _fair_share_tag(session: AsyncSession, client_id: str, weight: float) -> float:
    """The next tag of ``client_id``: after its previous one, and no earlier than the queue's frontier (the
    smallest tag still waiting; with nothing waiting, the latest tag any client was given)."""
    frontier = (await session.execute(select(func.min(TaskWait.vtag)))).scalar_one_or_none()
    if frontier is None:
        frontier = (await session.execute(select(func.max(FairShareClock.vtag)))).scalar_one_or_none() or 0.0
    rows = await driver_fetch(
        session,
        sqlite=(_NEXT_TAG_SQLITE, (client_id, float(frontier), 1.0 / weight)),
        postgres=(_NEXT_TAG_POSTGRES, (client_id, float(frontier), 1.0 / weight)),
    )
    return float(rows[0][0])


async def enqueue(session: AsyncSession, waiter: Waiter, now: float, weight: float) -> None:
    """Record that ``waiter`` waits for a slot; a task already waiting for this attempt keeps its place."""
    existing = await session.get(TaskWait, waiter.task_id)
    if existing is not None and existing.attempt == waiter.attempt:
        return
    tags = sorted({parse_requirement(r).tag for r in waiter.requirements})
    values: dict[str, Any] = {
        "attempt": waiter.attempt,
        "workflow_id": waiter.workflow_id,
        "client_id": waiter.client_id,
        "priority": waiter.priority,
        "tag": tags[0] if tags else "",
        "requirements": waiter.requirements,
        "min_trust": waiter.min_trust,
        "excluded_agent_ids": waiter.excluded_agent_ids,
        "failed_agent_ids": waiter.failed_agent_ids,
        "created": waiter.created,
        "since": now,
        "vtag": await _fair_share_tag(session, waiter.client_id, weight),
    }
    if existing is None:
        session.add(TaskWait(task_id=waiter.task_id, **values))
    else:
        for name, value in values.items():
            setattr(existing, name, value)
    await session.flush()


def _query_of(row: Sequence[Any]) -> RoutingQuery:
    _, _, _, _, requirements, min_trust, excluded, failed, _, _ = row
    return RoutingQuery(
        requirements=[parse_requirement(r) for r in requirements],
        strategy=Strategy.LEAST_LOADED,
        min_trust=min_trust,
        excluded=frozenset(excluded or []),
        failed_on_task=frozenset(failed or []),
    )


async def pick(
    session: AsyncSession, agent: Candidate, free: int, now: float, aging_seconds: float
) -> list[Sequence[Any]]:
    """Up to ``free`` waiting rows this agent can serve, in dispatch order (rows others are picking skipped)."""
    tags = sorted(agent.tags)
    if not tags:
        return []
    heads = await session.execute(
        select(TaskWait.priority, func.min(TaskWait.created)).where(TaskWait.tag.in_(tags)).group_by(TaskWait.priority)
    )
    postgres = session.get_bind().dialect.name == "postgresql"
    picked: list[Sequence[Any]] = []
    running = agent.running
    for priority in class_order(((p, float(c)) for p, c in heads), now, aging_seconds):
        for page in range(PICK_PAGES):
            query = (
                select(
                    TaskWait.task_id,
                    TaskWait.attempt,
                    TaskWait.workflow_id,
                    TaskWait.client_id,
                    TaskWait.requirements,
                    TaskWait.min_trust,
                    TaskWait.excluded_agent_ids,
                    TaskWait.failed_agent_ids,
                    TaskWait.created,
                    TaskWait.vtag,
                )
                .where(TaskWait.tag.in_(tags), TaskWait.priority == priority)
                .order_by(TaskWait.vtag, TaskWait.created, TaskWait.task_id)
                .limit(PICK_PAGE)
                .offset(page * PICK_PAGE)
            )
            if postgres:
                query = query.with_for_update(skip_locked=True)
            rows = list(await session.execute(query))
            for row in rows:
                candidate = with_running(agent, running)
                query_of_row = _query_of(row)
                if {r.tag for r in query_of_row.requirements} <= agent.tags.keys() and accepts(candidate, query_of_row):
                    picked.append(row)
                    running += 1
                    if len(picked) >= free:
                        return picked
            if len(rows) < PICK_PAGE:
                break
    return picked


def with_running(agent: Candidate, running: int) -> Candidate:
    """``agent`` with ``running`` attempts, by the routing decision's own live-load overlay."""
    return LiveState(running={agent.agent_id: running}, last_assigned={}).apply([agent])[0]


SERVICE_RATE_WINDOW_SECONDS = 300.0
WAITING_AGENTS_SHOWN = 20


async def waiting_view(session: AsyncSession, task_id: str, aging_seconds: float) -> WaitingView | None:
    """Where a waiting task stands: its position among the tasks waiting for the same agents (those whose
    first required tag is its own), the capable agents' load, and a start estimate from their recent rate."""
    wait = await session.get(TaskWait, task_id)
    if wait is None:
        return None
    now = time.time()
    heads = await session.execute(
        select(TaskWait.priority, func.min(TaskWait.created))
        .where(TaskWait.tag == wait.tag)
        .group_by(TaskWait.priority)
    )
    order = class_order(((p, float(c)) for p, c in heads), now, aging_seconds)
    ahead_classes = order[: order.index(wait.priority)] if wait.priority in order else []
    same_tag = TaskWait.tag == wait.tag
    ahead = (
        await session.execute(
            select(func.count()).where(
                same_tag,
                or_(
                    TaskWait.priority.in_(ahead_classes),
                    and_(
                        TaskWait.priority == wait.priority,
                        tuple_(TaskWait.vtag, TaskWait.created, TaskWait.task_id)
                        < tuple_(literal(wait.vtag), literal(wait.created), literal(wait.task_id)),
                    ),
                ),
            )
        )
    ).scalar_one()
    total = (await session.execute(select(func.count()).where(same_tag))).scalar_one()
    tags = sorted({parse_requirement(r).tag for r in wait.requirements})
    capable = (
        select(AgentCapability.agent_id)
        .where(AgentCapability.tag.in_(tags))
        .group_by(AgentCapability.agent_id)
        .having(func.count() == len(tags))
    )
    running = (
        select(TaskAttempt.agent_id, func.count().label("n"))
        .where(TaskAttempt.status == "running")
        .group_by(TaskAttempt.agent_id)
        .subquery()
    )
    rows = list(
        await session.execute(
            select(Agent.id, Agent.status, func.coalesce(running.c.n, 0), Agent.max_concurrency)
            .outerjoin(running, running.c.agent_id == Agent.id)
            .where(Agent.id.in_(capable))
            .order_by(Agent.id)
        )
    )
    since = datetime.fromtimestamp(now - SERVICE_RATE_WINDOW_SECONDS, UTC)
    finished = (
        await session.execute(
            select(func.count()).where(
                TaskAttempt.agent_id.in_(capable),
                TaskAttempt.finished_at.is_not(None),
                TaskAttempt.finished_at >= since,
            )
        )
    ).scalar_one()
    rate = finished / SERVICE_RATE_WINDOW_SECONDS if finished else None
    return WaitingView(
        position=int(ahead),
        waiting_total=int(total),
        waiting_since=datetime.fromtimestamp(wait.since, UTC),
        capable_agents=len(rows),
        agents=[
            WaitingAgent(agent_id=a, status=st, running=int(n), max_concurrency=m)
            for a, st, n, m in rows[:WAITING_AGENTS_SHOWN]
        ],
        service_rate_per_second=round(rate, 4) if rate else None,
        estimated_start_at=datetime.fromtimestamp(now + (ahead + 1) / rate, UTC) if rate else None,
    )
