"""A batch bigger than its agents' free slots joins the dispatch queue before its task runs start.

Each of those tasks would otherwise start its run, route, find the agents busy, queue up and sleep: a workflow
task, a routing local activity and a timer per task before it has done anything. Queued here instead (the
queue rows, statuses and receipts routing would write, in a few statements for a whole page), they have no
run while they wait: a hand-over starts a task's run with its assignment (core.routing.dispatch), so waiting costs
Temporal nothing and a thousand waiting tasks are a thousand rows. A task whose queue timeout runs out
(``task_waits.expires``) has its run started by the dispatch reconciler, and it routes once and fails as
no_agent_available unless a slot is free; cancelling one starts its run to cancel it (core.tasks.service). The free
slots the agents had are handed out right away, in dispatch order, like any freed slot.

Tasks with dependencies, and tasks allowed to wait only briefly, start and route as usual; so do the tasks of
a batch that the free slots can take at once (each is routed by its own strategy).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.platform.db import Database
from ains.core.routing.decide import Choice, choose, receipt_values
from ains.core.routing.queue import Waiter, enqueue_many
from ains.models.routing import Strategy
from ains.models.tables import RoutingReceipt, Task, TaskAttempt, as_utc, utcnow
from ains.models.tasks import TaskStatus
from ains.models.workflow_io import RouteOutcome, RouteRequest, TaskWorkflowInput

# A task that may wait only this long or less starts its run at once (a delayed start buys it nothing).
MIN_QUEUE_WAIT_SECONDS = 5.0

_Group = tuple[tuple[str, ...], float | None, tuple[str, ...]]


@dataclass(frozen=True)
class QueuedAhead:
    """The tasks now waiting in the dispatch queue, and the capable agents that have free slots to hand out."""

    task_ids: frozenset[str]
    free_agent_ids: list[str]


def _groups(tasks: Sequence[TaskWorkflowInput]) -> dict[_Group, list[TaskWorkflowInput]]:
    """The tasks that may queue ahead, by what makes an agent eligible for them."""
    groups: dict[_Group, list[TaskWorkflowInput]] = defaultdict(list)
    for task in tasks:
        if task.depends_on or task.queue_wait_seconds() < MIN_QUEUE_WAIT_SECONDS:
            continue
        key = (tuple(sorted(task.required_capabilities)), task.min_trust, tuple(sorted(task.excluded_agent_ids)))
        groups[key].append(task)
    return groups


def _request(task: TaskWorkflowInput) -> RouteRequest:
    return RouteRequest(
        task_id=task.task_id,
        attempt=1,
        required_capabilities=task.required_capabilities,
        failed_agent_ids=[],
        strategy=task.routing_strategy,
        min_trust=task.min_trust,
        excluded_agent_ids=task.excluded_agent_ids,
        priority_aging_seconds=task.policy.priority_aging_seconds,
    )


async def _queue(
    session: AsyncSession, tasks: Sequence[TaskWorkflowInput], choice: Choice, reason: str, weights: Mapping[str, float]
) -> list[str]:
    """The rows, statuses and receipts routing would write for each task that waits, for all at once; returns
    the tasks now waiting (not those finished or already given a slot, as by a retried page)."""
    ids = [task.task_id for task in tasks]
    rows = {
        row.id: row
        for row in await session.execute(
            select(Task.id, Task.status, Task.workflow_id, Task.client_id, Task.priority, Task.created_at).where(
                Task.id.in_(ids)
            )
        )
    }
    assigned = select(TaskAttempt.task_id).where(TaskAttempt.task_id.in_(ids), TaskAttempt.attempt == 1)
    holding = set((await session.execute(assigned)).scalars())
    fresh = [
        task
        for task in tasks
        if task.task_id in rows and task.task_id not in holding and not TaskStatus(rows[task.task_id].status).is_final
    ]
    if not fresh:
        return []
    now = utcnow()
    created = {task.task_id: (as_utc(rows[task.task_id].created_at) or now).timestamp() for task in fresh}
    waiters = [
        Waiter(
            task_id=task.task_id,
            attempt=1,
            workflow_id=rows[task.task_id].workflow_id,
            client_id=rows[task.task_id].client_id,
            priority=rows[task.task_id].priority,
            requirements=list(task.required_capabilities),
            min_trust=task.min_trust,
            excluded_agent_ids=list(task.excluded_agent_ids),
            failed_agent_ids=[],
            created=created[task.task_id],
            start_on_handover=True,
            expires=created[task.task_id] + task.queue_wait_seconds(),
        )
        for task in fresh
    ]
    await enqueue_many(session, waiters, now.timestamp(), weights)
    queued = [task.task_id for task in fresh]
    await session.execute(
        update(Task)
        .where(Task.id.in_(queued))
        .values(status=TaskStatus.ROUTING.value, status_reason=f"waiting for an agent: {reason}", updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.execute(delete(RoutingReceipt).where(RoutingReceipt.task_id.in_(queued), RoutingReceipt.attempt == 1))
    receipt = receipt_values(_request(fresh[0]), choice.evaluation, RouteOutcome.ALL_BUSY, reason, 0.0)
    await session.execute(
        insert(RoutingReceipt),
        [{**receipt, "task_id": task.task_id, "strategy": task.routing_strategy} for task in fresh],
    )
    return queued


async def queue_ahead(db: Database, tasks: Sequence[TaskWorkflowInput], weights: Mapping[str, float]) -> QueuedAhead:
    """Queue the tasks of every group bigger than its agents' free slots (or behind others already waiting)."""
    queued: set[str] = set()
    free_agents: list[str] = []
    for group in _groups(tasks).values():
        async with db.session() as session:
            probe = _request(group[0]).model_copy(update={"strategy": Strategy.LEAST_LOADED.value})
            choice = await choose(session, probe)
        evaluation = choice.evaluation
        if evaluation.winner is None and not (evaluation.waiting_is_useful and choice.candidates):
            continue  # no agent can ever take them: each run fails at once with the reason
        free = [c for c in evaluation.eligible if c.running < c.max_concurrency]
        slots = sum(c.max_concurrency - c.running for c in free)
        if not choice.live.others_waiting and len(group) <= slots:
            continue  # every task finds a free agent: each routes by its own strategy
        reason = (
            f"queued with its batch: {len(group)} task(s) for {slots} free slot(s) of {len(choice.candidates)} "
            f"capable agent(s), {choice.live.others_waiting} task(s) already waiting; slots go in dispatch order "
            "(priority, fair share, age)"
        )
        async with db.transaction() as session:
            queued.update(await _queue(session, group, choice, reason, weights))
        free_agents += [c.agent_id for c in free]
    return QueuedAhead(frozenset(queued), list(dict.fromkeys(free_agents)))
