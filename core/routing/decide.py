"""Route one attempt of a task: let models.routing decide among the candidates (core.routing.candidates, or the
worker's snapshot), reserve the winner, keep a receipt; or queue the task when every capable agent is busy."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.platform.db import driver_fetch
from ains.core.platform.metrics import observe_queue_wait
from ains.core.routing import writes
from ains.core.routing.candidates import LiveLoad, load_candidates, read_live_load
from ains.core.routing.queue import Waiter, enqueue
from ains.core.routing.snapshot import CandidateCache
from ains.models.adaptive import objective_for
from ains.models.agents import kind_of_endpoint
from ains.models.capabilities import parse_requirement
from ains.models.routing import (
    Candidate,
    Evaluation,
    LiveState,
    RoutingQuery,
    SnapshotMemo,
    Strategy,
    evaluate,
)
from ains.models.tables import as_utc, utcnow
from ains.models.tasks import TaskStatus
from ains.models.workflow_io import RouteDecision, RouteOutcome, RouteRequest


def receipt_values(
    request: RouteRequest, evaluation: Evaluation, outcome: RouteOutcome, reason: str, ms: float
) -> dict[str, Any]:
    """A routing receipt's row: the decision, its reason and every candidate's report."""
    now = utcnow()
    return {
        "task_id": request.task_id,
        "attempt": request.attempt,
        "strategy": str(request.strategy),
        "outcome": outcome.value,
        "winner_agent_id": evaluation.winner.agent_id if evaluation.winner else None,
        "reason": reason,
        "candidates": [r.as_dict() for r in evaluation.reports],
        "candidates_total": evaluation.total,
        "duration_ms": round(ms, 3),
        "created_at": now,
        "updated_at": now,
    }


async def _store_receipt(
    session: AsyncSession, request: RouteRequest, evaluation: Evaluation, outcome: RouteOutcome, reason: str, ms: float
) -> None:
    """One row per (task, attempt), updated in place while the task waits: a single upsert."""
    await writes.upsert_receipt(session, receipt_values(request, evaluation, outcome, reason, ms))


_ASSIGNMENT = (
    "SELECT a.agent_id, g.endpoint_url, g.avg_response_ms FROM task_attempts a LEFT JOIN agents g ON g.id = a.agent_id "
    "WHERE a.task_id = {task} AND a.attempt = {attempt}"
)
_ASSIGNMENT_SQLITE = _ASSIGNMENT.format(task="?", attempt="?")
_ASSIGNMENT_POSTGRES = _ASSIGNMENT.format(task="$1", attempt="$2")


async def _assignment_of(session: AsyncSession, request: RouteRequest) -> RouteDecision | None:
    """The agent this attempt was already given, when a retried or replayed routing step runs again."""
    key = (request.task_id, request.attempt)
    rows = await driver_fetch(session, sqlite=(_ASSIGNMENT_SQLITE, key), postgres=(_ASSIGNMENT_POSTGRES, key))
    if not rows:
        return None
    agent_id, endpoint, avg_response_ms = rows[0]
    return RouteDecision(
        outcome=RouteOutcome.ASSIGNED,
        agent_id=agent_id,
        endpoint_url=endpoint,
        reason="already assigned to this attempt",
        agent_kind=kind_of_endpoint(endpoint),
        agent_avg_response_ms=avg_response_ms,
    )


async def _not_assigned(
    session: AsyncSession,
    request: RouteRequest,
    evaluation: Evaluation,
    outcome: RouteOutcome,
    reason: str,
    started: float,
) -> RouteDecision:
    existing = await _assignment_of(session, request)
    if existing is not None:  # this attempt holds a slot already, which is why none looked free
        return existing
    await _store_receipt(session, request, evaluation, outcome, reason, (time.perf_counter() - started) * 1000)
    return RouteDecision(outcome=outcome, reason=reason)


class SlotTaken(Exception):
    """Another decision took the agent's last free slot between this one's read and its write (Postgres only).

    Raised inside the routing transaction so that everything it wrote is rolled back; the caller routes again.
    """


async def _reserve(session: AsyncSession, request: RouteRequest, winner: Candidate, now: datetime) -> bool:
    """Write the attempt row that holds the agent's slot; False when this attempt already has one.

    The agent row is updated first: on Postgres that row lock queues concurrent decisions for the same agent,
    and the task update that follows (a later statement, so a fresh snapshot) counts its running attempts.
    """
    await writes.touch_agent(session, winner.agent_id, now)
    if not await writes.reserve_attempt(session, request.task_id, request.attempt, winner.agent_id, now):
        return False
    task = await writes.start_task(session, request.task_id, request.attempt, winner.agent_id, now)
    if task is None:
        return True
    if task.running_on_agent is not None and task.running_on_agent > winner.max_concurrency:
        raise SlotTaken(f"agent {winner.agent_id} filled up while this decision was made")
    if request.attempt == 1:  # the first assignment ends the task's time in the queue
        observe_queue_wait(task.task_type, (now - (as_utc(task.created_at) or now)).total_seconds())
    return True


@dataclass(frozen=True)
class Choice:
    """What a routing decision saw and concluded, before anything is written."""

    tags: list[str]
    live: LiveLoad
    candidates: list[Candidate]
    query: RoutingQuery
    evaluation: Evaluation


async def choose(session: AsyncSession, request: RouteRequest, cache: CandidateCache | None = None) -> Choice:
    """Route among the registry's agents for ``request``: live load, candidates, filters, strategy. Reads only."""
    requirements = [parse_requirement(text) for text in request.required_capabilities]
    tags = sorted({r.tag for r in requirements})
    live = await read_live_load(session, tags, request.task_id)
    load = LiveState(running=live.running, last_assigned={})
    trust: dict[str, float] | None = None
    memo: SnapshotMemo | None = None
    if cache is not None:
        view = await cache.candidates(session, tags)
        candidates, trust, memo = load.apply(view.candidates, view.index), view.trust, view.memo
    else:
        candidates = load.apply(await load_candidates(session, tags))
    query = RoutingQuery(
        requirements=requirements,
        strategy=Strategy(request.strategy),
        min_trust=request.min_trust,
        excluded=frozenset(request.excluded_agent_ids),
        failed_on_task=frozenset(request.failed_agent_ids),
        seed=f"{request.task_id}:{request.attempt}",
        now=utcnow().timestamp(),
        objective=objective_for(request.adaptive),
    )
    evaluation = evaluate(candidates, query, trust=trust, memo=memo)
    if cache is not None and evaluation.winner is None and not evaluation.waiting_is_useful:
        view = await cache.candidates(session, tags, refresh=True)  # failing for good: check afresh
        candidates, trust = load.apply(view.candidates, view.index), view.trust
        evaluation = evaluate(candidates, query, trust=trust, memo=view.memo)
    return Choice(tags=tags, live=live, candidates=candidates, query=query, evaluation=evaluation)


@dataclass(frozen=True)
class RouteStep:
    """A routing step's decision, and the free agents whose slots the dispatch queue must assign: a slot was
    free but other tasks wait for these agents, so this task queued up rather than jump ahead of them."""

    decision: RouteDecision
    free_agent_ids: list[str]


async def _queue_up(
    session: AsyncSession,
    request: RouteRequest,
    evaluation: Evaluation,
    reason: str,
    started: float,
    weights: Mapping[str, float],
) -> RouteDecision:
    """Wait for a slot: a row in the dispatch queue, the task's status and its receipt, in this transaction."""
    existing = await _assignment_of(session, request)
    if existing is not None:  # this attempt holds a slot already (handed over), which is why none looked free
        return existing
    task = await writes.task_to_queue(session, request.task_id)
    if task is not None and not TaskStatus(task.status).is_final:
        waiter = Waiter(
            task_id=request.task_id,
            attempt=request.attempt,
            workflow_id=task.workflow_id,
            client_id=task.client_id,
            priority=task.priority,
            requirements=list(request.required_capabilities),
            min_trust=request.min_trust,
            excluded_agent_ids=list(request.excluded_agent_ids),
            failed_agent_ids=list(request.failed_agent_ids),
            created=(as_utc(task.created_at) or utcnow()).timestamp(),
        )
        now = utcnow()
        await enqueue(session, waiter, now.timestamp(), weights.get(task.client_id, 1.0))
        status_reason = f"waiting for an agent: {reason}"
        if task.status != TaskStatus.ROUTING.value or task.status_reason != status_reason:
            await writes.set_waiting(session, request.task_id, status_reason, now)
    await _store_receipt(
        session, request, evaluation, RouteOutcome.ALL_BUSY, reason, (time.perf_counter() - started) * 1000
    )
    return RouteDecision(outcome=RouteOutcome.ALL_BUSY, reason=reason)


async def route_attempt(
    session: AsyncSession,
    request: RouteRequest,
    cache: CandidateCache | None = None,
    weights: Mapping[str, float] | None = None,
) -> RouteStep:
    """Pick and reserve an agent for ``request.attempt``, or queue the task up. Idempotent: a replay returns
    the same agent.

    The common path (nobody waiting) is one read (live load) and four writes (agent, attempt, task,
    receipt); the registry itself comes from the worker's snapshot when ``cache`` is given. When every
    capable agent is busy, or others already wait for these agents, the task joins the dispatch queue
    (core.routing.dispatch) and is handed a slot when one frees.
    """
    started = time.perf_counter()
    choice = await choose(session, request, cache)
    live, candidates, evaluation = choice.live, choice.candidates, choice.evaluation
    weights = weights or {}

    if evaluation.winner is None:
        if evaluation.waiting_is_useful and candidates:
            reason = f"{len(candidates)} capable agent(s), none free now: {evaluation.summary()}"
            return RouteStep(await _queue_up(session, request, evaluation, reason, started, weights), [])
        if not candidates:
            reason = f"no registered agent offers {', '.join(request.required_capabilities)}"
        else:
            reason = f"no capable agent can ever take this task: {evaluation.summary()}"
        decision = await _not_assigned(session, request, evaluation, RouteOutcome.NO_CAPABLE_AGENT, reason, started)
        return RouteStep(decision, [])

    if live.others_waiting:
        free = [c.agent_id for c in evaluation.eligible if c.running < c.max_concurrency]
        reason = (
            f"queued: {live.others_waiting} other task(s) wait for these agents; "
            "their free slots go in dispatch order (priority, fair share, age)"
        )
        decision = await _queue_up(session, request, evaluation, reason, started, weights)
        return RouteStep(decision, free if decision.outcome is RouteOutcome.ALL_BUSY else [])

    winner = evaluation.winner
    now = utcnow()
    if not await _reserve(session, request, winner, now):
        existing = await _assignment_of(session, request)
        assert existing is not None, "the attempt row that blocked the insert exists"
        return RouteStep(existing, [])
    if request.queued:
        await writes.leave_queue(session, request.task_id)
    if cache is not None:
        cache.record_assignment(winner.agent_id, now.timestamp())
    reason = f"{request.strategy}: best of {len(evaluation.eligible)} eligible agent(s) ({evaluation.summary()})"
    await _store_receipt(
        session, request, evaluation, RouteOutcome.ASSIGNED, reason, (time.perf_counter() - started) * 1000
    )
    decision = RouteDecision(
        outcome=RouteOutcome.ASSIGNED,
        agent_id=winner.agent_id,
        endpoint_url=winner.endpoint_url,
        reason=reason,
        agent_kind=kind_of_endpoint(winner.endpoint_url),
        agent_avg_response_ms=winner.avg_response_ms,
    )
    return RouteStep(decision, [])
