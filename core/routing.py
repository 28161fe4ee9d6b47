"""Choose an agent for one attempt of a task: capability match, availability, capacity, then least-loaded."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.agents import running_counts
from models.capabilities import parse_requirement, satisfies
from models.tables import Agent, AgentCapability, Task, TaskAttempt, utcnow
from models.workflow_io import RouteDecision, RouteOutcome, RouteRequest


@dataclass
class _Candidate:
    agent: Agent
    running: int


async def _capable_agents(session: AsyncSession, requirement_texts: list[str]) -> list[Agent]:
    requirements = [parse_requirement(text) for text in requirement_texts]
    tags = sorted({r.tag for r in requirements})
    having_all_tags = (
        select(AgentCapability.agent_id)
        .where(AgentCapability.tag.in_(tags))
        .group_by(AgentCapability.agent_id)
        .having(func.count(AgentCapability.tag) == len(tags))
    )
    agents = list((await session.execute(select(Agent).where(Agent.id.in_(having_all_tags)))).scalars())
    if not agents or all(not str(r.spec) for r in requirements):
        return agents
    caps = await session.execute(
        select(AgentCapability.agent_id, AgentCapability.tag, AgentCapability.version).where(
            AgentCapability.agent_id.in_([a.id for a in agents]), AgentCapability.tag.in_(tags)
        )
    )
    versions: dict[str, dict[str, str]] = {}
    for agent_id, tag, version in caps.tuples():
        versions.setdefault(agent_id, {})[tag] = version
    return [a for a in agents if satisfies(versions.get(a.id, {}), requirements)]


def _least_loaded(candidates: list[_Candidate]) -> _Candidate:
    # Ties go to the agent assigned least recently, so equal agents share work round-robin.
    def key(c: _Candidate) -> tuple[float, float, str]:
        last = c.agent.last_assigned_at.timestamp() if c.agent.last_assigned_at else 0.0
        return (c.running / c.agent.max_concurrency, last, c.agent.id)

    return min(candidates, key=key)


async def route_attempt(session: AsyncSession, request: RouteRequest) -> RouteDecision:
    """Pick and reserve an agent for ``request.attempt``. Idempotent: a replay returns the same agent."""
    existing = await session.get(TaskAttempt, (request.task_id, request.attempt))
    if existing is not None:
        agent = await session.get(Agent, existing.agent_id)
        return RouteDecision(
            outcome=RouteOutcome.ASSIGNED,
            agent_id=existing.agent_id,
            endpoint_url=agent.endpoint_url if agent else None,
            reason="already assigned to this attempt",
        )

    capable = await _capable_agents(session, request.required_capabilities)
    if not capable:
        return RouteDecision(
            outcome=RouteOutcome.NO_CAPABLE_AGENT,
            reason=f"no registered agent offers {', '.join(request.required_capabilities)}",
        )

    running = await running_counts(session, [a.id for a in capable])
    available = [a for a in capable if a.status == "available"]
    fresh = [a for a in available if a.id not in request.excluded_agent_ids]
    # Agents that already failed this task are used again only when no other capable agent exists.
    pool = fresh or ([] if any(a.id not in request.excluded_agent_ids for a in capable) else available)
    with_capacity = [_Candidate(a, running.get(a.id, 0)) for a in pool if running.get(a.id, 0) < a.max_concurrency]
    if not with_capacity:
        unavailable = len(capable) - len(available)
        busy = len(pool)
        return RouteDecision(
            outcome=RouteOutcome.ALL_BUSY,
            reason=f"{len(capable)} capable agent(s): {busy} at max concurrency, {unavailable} unavailable, "
            f"{len(available) - len(fresh)} already failed this task",
        )

    winner = _least_loaded(with_capacity)
    now = utcnow()
    session.add(TaskAttempt(task_id=request.task_id, attempt=request.attempt, agent_id=winner.agent.id, started_at=now))
    winner.agent.last_assigned_at = now
    task = await session.get(Task, request.task_id)
    if task is not None:
        task.status = "running"
        task.status_reason = None
        task.assigned_agent_id = winner.agent.id
        task.attempts = request.attempt
        task.started_at = task.started_at or now
    await session.flush()
    return RouteDecision(
        outcome=RouteOutcome.ASSIGNED,
        agent_id=winner.agent.id,
        endpoint_url=winner.agent.endpoint_url,
        reason=f"least loaded of {len(with_capacity)} eligible agent(s) ({winner.running}/{winner.agent.max_concurrency} busy)",
    )
