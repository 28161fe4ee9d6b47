"""Route one attempt of a task: load capable agents, let models.routing decide, reserve the winner, keep a receipt."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.capabilities import parse_requirement
from models.priority import effective_priority, ranks_ahead
from models.routing import (
    RECEIPT_CANDIDATE_LIMIT,
    Candidate,
    Evaluation,
    RoutingQuery,
    Strategy,
    TagStats,
    could_use,
    evaluate,
)
from models.tables import Agent, AgentCapability, RoutingReceipt, Task, TaskAttempt, as_utc, utcnow
from models.workflow_io import RouteDecision, RouteOutcome, RouteRequest


async def running_by_agent(session: AsyncSession) -> dict[str, int]:
    """Live load of every agent, derived from attempt rows so a crash can never leak a slot."""
    rows = await session.execute(
        select(TaskAttempt.agent_id, func.count()).where(TaskAttempt.status == "running").group_by(TaskAttempt.agent_id)
    )
    return {agent_id: count for agent_id, count in rows.tuples()}


async def load_candidates(session: AsyncSession, tags: list[str]) -> list[Candidate]:
    """Every agent offering all ``tags``, with what the filters and strategies need, in two queries."""
    rows = await session.execute(
        select(
            Agent.id,
            Agent.endpoint_url,
            Agent.status,
            Agent.max_concurrency,
            Agent.trust_score,
            Agent.avg_response_ms,
            Agent.last_assigned_at,
            Agent.created_at,
            AgentCapability.tag,
            AgentCapability.version,
            AgentCapability.trust_score,
            AgentCapability.total_tasks,
        )
        .join(AgentCapability, AgentCapability.agent_id == Agent.id)
        .where(AgentCapability.tag.in_(tags))
    )
    grouped: dict[
        str, list[tuple[str, str, str, int, float, float | None, datetime | None, datetime, str, str, float, int]]
    ] = {}
    for row in rows.tuples():
        grouped.setdefault(row[0], []).append(row)
    running = await running_by_agent(session) if grouped else {}
    candidates: list[Candidate] = []
    for agent_id, agent_rows in grouped.items():
        if len(agent_rows) < len(tags):
            continue
        _, endpoint, status, max_concurrency, trust, avg_ms, last_assigned, created, *_ = agent_rows[0]
        assigned = as_utc(last_assigned)
        registered = as_utc(created)
        candidates.append(
            Candidate(
                agent_id=agent_id,
                endpoint_url=endpoint,
                available=status == "available",
                max_concurrency=max_concurrency,
                running=running.get(agent_id, 0),
                trust=trust,
                avg_response_ms=avg_ms,
                last_assigned_at=assigned.timestamp() if assigned else None,
                tags={r[8]: TagStats(version=r[9], trust=r[10], samples=r[11]) for r in agent_rows},
                registered_at=registered.timestamp() if registered else 0.0,
            )
        )
    return candidates


@dataclass(frozen=True)
class _Waiting:
    task_id: str
    workflow_id: str
    rank: float
    created: float
    query: RoutingQuery


async def waiting_tasks(session: AsyncSession, tags: set[str], aging_seconds: float, now: float) -> list[_Waiting]:
    """Tasks waiting for an agent that need at least one of ``tags``, best ranked first."""
    rows = await session.execute(
        select(
            Task.id,
            Task.workflow_id,
            Task.priority,
            Task.created_at,
            Task.required_capabilities,
            Task.min_trust,
            Task.excluded_agent_ids,
        ).where(Task.status == "routing")
    )
    waiting: list[_Waiting] = []
    for task_id, workflow_id, priority, created_at, required, min_trust, excluded in rows.tuples():
        requirements = [parse_requirement(r) for r in required]
        if not tags & {r.tag for r in requirements}:
            continue
        created = (as_utc(created_at) or utcnow()).timestamp()
        waiting.append(
            _Waiting(
                task_id=task_id,
                workflow_id=workflow_id,
                rank=effective_priority(priority, now - created, aging_seconds),
                created=created,
                query=RoutingQuery(
                    requirements=requirements,
                    strategy=Strategy.LEAST_LOADED,
                    min_trust=min_trust,
                    excluded=frozenset(excluded or []),
                ),
            )
        )
    waiting.sort(key=lambda w: (-w.rank, w.created, w.task_id))
    return waiting


async def _tasks_ranked_ahead(
    session: AsyncSession, task: Task, evaluation: Evaluation, request: RouteRequest, tags: list[str], now: float
) -> int:
    """How many waiting tasks rank ahead of ``task`` and could take one of the free slots it would take.

    Priority order among waiting tasks is kept here, at the only queue AINS owns: when every free slot is
    wanted by a task that ranks ahead (higher priority after aging, or same and older), this one yields.
    Candidates carry stats only for this task's tags, so a competitor needing other tags as well is not
    counted: the error is toward taking the slot, never toward two tasks yielding to each other.
    """
    free = [c for c in evaluation.eligible if c.running < c.max_concurrency]
    free_slots = sum(c.max_concurrency - c.running for c in free)
    created = (as_utc(task.created_at) or utcnow()).timestamp()
    mine = effective_priority(task.priority, now - created, request.priority_aging_seconds)
    ahead = 0
    for other in await waiting_tasks(session, set(tags), request.priority_aging_seconds, now):
        if other.task_id == task.id:
            continue
        if not ranks_ahead(other.rank, other.created, other.task_id, mine, created, task.id):
            break
        if any(could_use(c, other.query) for c in free):
            ahead += 1
            if ahead >= free_slots:
                break
    return ahead if ahead >= free_slots else 0


async def next_waiting_workflow(session: AsyncSession, agent_id: str, aging_seconds: float) -> str | None:
    """The workflow of the best-ranked waiting task that this agent could serve (to wake it up)."""
    tags = set(
        (await session.execute(select(AgentCapability.tag).where(AgentCapability.agent_id == agent_id))).scalars()
    )
    candidates = [c for c in await load_candidates(session, sorted(tags)) if c.agent_id == agent_id] if tags else []
    if not candidates:
        return None
    agent = candidates[0]
    for waiting in await waiting_tasks(session, tags, aging_seconds, utcnow().timestamp()):
        if {r.tag for r in waiting.query.requirements} <= set(agent.tags) and could_use(agent, waiting.query):
            return waiting.workflow_id
    return None


async def _store_receipt(
    session: AsyncSession, request: RouteRequest, evaluation: Evaluation, outcome: RouteOutcome, reason: str, ms: float
) -> None:
    receipt = await session.get(RoutingReceipt, (request.task_id, request.attempt))
    candidates = [r.as_dict() for r in evaluation.reports[:RECEIPT_CANDIDATE_LIMIT]]
    now = utcnow()
    if receipt is None:
        receipt = RoutingReceipt(task_id=request.task_id, attempt=request.attempt, created_at=now)
        session.add(receipt)
    receipt.strategy = request.strategy
    receipt.outcome = outcome.value
    receipt.winner_agent_id = evaluation.winner.agent_id if evaluation.winner else None
    receipt.reason = reason
    receipt.candidates = candidates
    receipt.candidates_total = len(evaluation.reports)
    receipt.duration_ms = round(ms, 3)
    receipt.updated_at = now


async def route_attempt(session: AsyncSession, request: RouteRequest) -> RouteDecision:
    """Pick and reserve an agent for ``request.attempt``. Idempotent: a replay returns the same agent."""
    started = time.perf_counter()
    existing = await session.get(TaskAttempt, (request.task_id, request.attempt))
    if existing is not None:
        agent = await session.get(Agent, existing.agent_id)
        return RouteDecision(
            outcome=RouteOutcome.ASSIGNED,
            agent_id=existing.agent_id,
            endpoint_url=agent.endpoint_url if agent else None,
            reason="already assigned to this attempt",
        )

    requirements = [parse_requirement(text) for text in request.required_capabilities]
    tags = sorted({r.tag for r in requirements})
    candidates = await load_candidates(session, tags)
    query = RoutingQuery(
        requirements=requirements,
        strategy=Strategy(request.strategy),
        min_trust=request.min_trust,
        excluded=frozenset(request.excluded_agent_ids),
        failed_on_task=frozenset(request.failed_agent_ids),
        seed=f"{request.task_id}:{request.attempt}",
        now=utcnow().timestamp(),
    )
    evaluation = evaluate(candidates, query)

    def elapsed() -> float:
        return (time.perf_counter() - started) * 1000

    if evaluation.winner is None:
        if not candidates:
            outcome = RouteOutcome.NO_CAPABLE_AGENT
            reason = f"no registered agent offers {', '.join(request.required_capabilities)}"
        elif evaluation.waiting_is_useful:
            outcome = RouteOutcome.ALL_BUSY
            reason = f"{len(candidates)} capable agent(s), none free now: {evaluation.summary()}"
        else:
            outcome = RouteOutcome.NO_CAPABLE_AGENT
            reason = f"no capable agent can ever take this task: {evaluation.summary()}"
        await _store_receipt(session, request, evaluation, outcome, reason, elapsed())
        await session.flush()
        return RouteDecision(outcome=outcome, reason=reason)

    task = await session.get(Task, request.task_id)
    if task is not None and request.priority_aging_seconds >= 0:
        ahead = await _tasks_ranked_ahead(session, task, evaluation, request, tags, query.now)
        if ahead:
            reason = f"yielding the free slot(s) to {ahead} waiting task(s) that rank ahead by priority and age"
            await _store_receipt(session, request, evaluation, RouteOutcome.ALL_BUSY, reason, elapsed())
            await session.flush()
            return RouteDecision(outcome=RouteOutcome.ALL_BUSY, reason=reason)

    winner = evaluation.winner
    now = utcnow()
    session.add(TaskAttempt(task_id=request.task_id, attempt=request.attempt, agent_id=winner.agent_id, started_at=now))
    agent_row = await session.get(Agent, winner.agent_id)
    if agent_row is not None:
        agent_row.last_assigned_at = now
    if task is not None:
        task.status = "running"
        task.status_reason = None
        task.assigned_agent_id = winner.agent_id
        task.attempts = request.attempt
        task.started_at = task.started_at or now
    eligible = sum(1 for r in evaluation.reports if r.eliminated_by is None)
    reason = f"{request.strategy}: best of {eligible} eligible agent(s) ({evaluation.summary()})"
    await _store_receipt(session, request, evaluation, RouteOutcome.ASSIGNED, reason, elapsed())
    await session.flush()
    return RouteDecision(
        outcome=RouteOutcome.ASSIGNED, agent_id=winner.agent_id, endpoint_url=winner.endpoint_url, reason=reason
    )
