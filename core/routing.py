"""Route one attempt of a task: load capable agents, let models.routing decide, reserve the winner, keep a receipt."""

from __future__ import annotations

import time
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from models.capabilities import parse_requirement
from models.routing import RECEIPT_CANDIDATE_LIMIT, Candidate, Evaluation, RoutingQuery, Strategy, TagStats, evaluate
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

    winner = evaluation.winner
    now = utcnow()
    session.add(TaskAttempt(task_id=request.task_id, attempt=request.attempt, agent_id=winner.agent_id, started_at=now))
    agent_row = await session.get(Agent, winner.agent_id)
    if agent_row is not None:
        agent_row.last_assigned_at = now
    task = await session.get(Task, request.task_id)
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
