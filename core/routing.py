"""Route one attempt of a task: load capable agents, let models.routing decide, reserve the winner, keep a receipt."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.agents import running_counts
from core.metrics import observe_queue_wait
from models.agents import kind_of_endpoint
from models.capabilities import parse_requirement
from models.priority import effective_priority, ranks_ahead
from models.routing import (
    Candidate,
    Evaluation,
    LiveState,
    RoutingQuery,
    Strategy,
    TagStats,
    could_use,
    evaluate,
)
from models.tables import Agent, AgentCapability, RoutingReceipt, Task, TaskAttempt, as_utc, utcnow
from models.workflow_io import RouteDecision, RouteOutcome, RouteRequest


def _epoch(column: Any, dialect: str) -> ColumnElement[Any]:
    """Seconds since the epoch computed by the database: cheaper than parsing thousands of datetimes in Python."""
    if dialect == "sqlite":
        return (func.julianday(column) - 2440587.5) * 86400.0
    return func.extract("epoch", column)


async def load_candidates(session: AsyncSession, tags: list[str], agent_id: str | None = None) -> list[Candidate]:
    """Every agent offering all ``tags``, with its live load and what the filters and strategies need.

    One query: agents joined to the capability rows for ``tags`` and to the running-attempt counts (load is
    derived from attempt rows so a crash can never leak a slot).
    """
    dialect = session.get_bind().dialect.name
    running = (
        select(TaskAttempt.agent_id, func.count().label("n"))
        .where(TaskAttempt.status == "running")
        .group_by(TaskAttempt.agent_id)
        .subquery()
    )
    rows = await session.execute(
        select(
            Agent.id,
            Agent.endpoint_url,
            Agent.status,
            Agent.max_concurrency,
            Agent.trust_score,
            Agent.avg_response_ms,
            _epoch(Agent.last_assigned_at, dialect),
            _epoch(Agent.created_at, dialect),
            func.coalesce(running.c.n, 0),
            AgentCapability.tag,
            AgentCapability.version,
            AgentCapability.trust_score,
            AgentCapability.total_tasks,
        )
        .join(AgentCapability, AgentCapability.agent_id == Agent.id)
        .outerjoin(running, running.c.agent_id == Agent.id)
        .where(AgentCapability.tag.in_(tags), *([Agent.id == agent_id] if agent_id else []))
    )
    needed = len(tags)
    tag_stats: dict[str, dict[str, TagStats]] = {}
    first_row: dict[str, tuple[str, str, int, float, float | None, float | None, float | None, int]] = {}
    for (
        agent_id,
        endpoint,
        status,
        limit,
        trust,
        avg_ms,
        last,
        created,
        n,
        tag,
        version,
        tag_trust,
        samples,
    ) in rows.tuples():
        tag_stats.setdefault(agent_id, {})[tag] = TagStats(version, tag_trust, samples)
        if agent_id not in first_row:
            first_row[agent_id] = (endpoint, status, limit, trust, avg_ms, last, created, n)
    candidates: list[Candidate] = []
    for agent_id, stats in tag_stats.items():
        if len(stats) < needed:
            continue
        endpoint, status, limit, trust, avg_ms, last, created, n = first_row[agent_id]
        candidates.append(
            Candidate(
                agent_id=agent_id,
                endpoint_url=endpoint,
                available=status == "available",
                max_concurrency=limit,
                running=int(n),
                trust=trust,
                avg_response_ms=avg_ms,
                last_assigned_at=float(last) if last is not None else None,
                tags=stats,
                registered_at=float(created or 0.0),
            )
        )
    return candidates


class CandidateCache:
    """A worker's snapshot of the slow-changing part of routing candidates, per set of tags.

    Capabilities, versions, trust, availability and limits are reused for ``ttl_seconds`` (a registry
    change reaches routing within that time); live load is read fresh for every decision, and assignment
    times are updated locally as this worker assigns, so round-robin stays exact within one worker.
    """

    MAX_ENTRIES = 1024

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl_seconds = ttl_seconds
        self._entries: dict[tuple[str, ...], tuple[float, list[Candidate]]] = {}
        self._assigned: dict[str, float] = {}

    async def candidates(self, session: AsyncSession, tags: list[str]) -> list[Candidate]:
        key = tuple(tags)
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is None or now - entry[0] > self.ttl_seconds:
            fresh = await load_candidates(session, tags)
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (now, fresh)
            return fresh
        return LiveState(running=await running_counts(session), last_assigned=self._assigned).apply(entry[1])

    def record_assignment(self, agent_id: str, at: float) -> None:
        if len(self._assigned) >= 100_000:
            self._assigned.clear()
        self._assigned[agent_id] = at


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
    waiting_list = await waiting_tasks(session, tags, aging_seconds, utcnow().timestamp()) if tags else []
    if not waiting_list:  # the common case: nobody waits, so no candidate load at all
        return None
    candidates = await load_candidates(session, sorted(tags), agent_id=agent_id)
    if not candidates:
        return None
    agent = candidates[0]
    for waiting in waiting_list:
        if {r.tag for r in waiting.query.requirements} <= set(agent.tags) and could_use(agent, waiting.query):
            return waiting.workflow_id
    return None


async def _store_receipt(
    session: AsyncSession, request: RouteRequest, evaluation: Evaluation, outcome: RouteOutcome, reason: str, ms: float
) -> None:
    receipt = await session.get(RoutingReceipt, (request.task_id, request.attempt))
    candidates = [r.as_dict() for r in evaluation.reports]
    now = utcnow()
    if receipt is None:
        receipt = RoutingReceipt(task_id=request.task_id, attempt=request.attempt, created_at=now)
        session.add(receipt)
    receipt.strategy = request.strategy
    receipt.outcome = outcome.value
    receipt.winner_agent_id = evaluation.winner.agent_id if evaluation.winner else None
    receipt.reason = reason
    receipt.candidates = candidates
    receipt.candidates_total = evaluation.total
    receipt.duration_ms = round(ms, 3)
    receipt.updated_at = now


async def route_attempt(
    session: AsyncSession, request: RouteRequest, cache: CandidateCache | None = None
) -> RouteDecision:
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
            agent_kind=kind_of_endpoint(agent.endpoint_url if agent else None),
        )

    requirements = [parse_requirement(text) for text in request.required_capabilities]
    tags = sorted({r.tag for r in requirements})
    candidates = await (cache.candidates(session, tags) if cache else load_candidates(session, tags))
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
    await session.execute(update(Agent).where(Agent.id == winner.agent_id).values(last_assigned_at=now))
    if cache is not None:
        cache.record_assignment(winner.agent_id, now.timestamp())
    if task is not None:
        task.status = "running"
        task.status_reason = None
        task.assigned_agent_id = winner.agent_id
        task.attempts = request.attempt
        if task.started_at is None and task.created_at is not None:
            observe_queue_wait(task.type, (now - (as_utc(task.created_at) or now)).total_seconds())
        task.started_at = task.started_at or now
    reason = f"{request.strategy}: best of {len(evaluation.eligible)} eligible agent(s) ({evaluation.summary()})"
    await _store_receipt(session, request, evaluation, RouteOutcome.ASSIGNED, reason, elapsed())
    await session.flush()
    return RouteDecision(
        outcome=RouteOutcome.ASSIGNED,
        agent_id=winner.agent_id,
        endpoint_url=winner.endpoint_url,
        reason=reason,
        agent_kind=kind_of_endpoint(winner.endpoint_url),
    )
