"""The dispatch queue: tasks waiting for a slot (``task_waits``) and the order a freed slot is handed out in.

``enqueue`` is called by routing (core.routing) in its transaction; ``pick`` by the dispatcher
(core.dispatch) while it holds the releasing agent's row lock. The order itself is models.dispatch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.capabilities import parse_requirement
from models.dispatch import class_order, fair_share_tag
from models.routing import Candidate, RoutingQuery, Strategy, accepts
from models.tables import TaskWait

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


async def enqueue(session: AsyncSession, waiter: Waiter, now: float, weight: float) -> None:
    """Record that ``waiter`` waits for a slot; a task already waiting for this attempt keeps its place."""
    existing = await session.get(TaskWait, waiter.task_id)
    if existing is not None and existing.attempt == waiter.attempt:
        return
    frontier = (await session.execute(select(func.min(TaskWait.vtag)))).scalar_one_or_none()
    client_last = (
        await session.execute(select(func.max(TaskWait.vtag)).where(TaskWait.client_id == waiter.client_id))
    ).scalar_one_or_none()
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
        "vtag": fair_share_tag(frontier, client_last, weight),
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
    return Candidate(
        agent.agent_id,
        agent.endpoint_url,
        agent.available,
        agent.max_concurrency,
        running,
        agent.trust,
        agent.avg_response_ms,
        agent.last_assigned_at,
        agent.tags,
        agent.registered_at,
    )
