"""A batch bigger than its agents' free slots joins the dispatch queue before its task runs start.

Each of those tasks would otherwise start its run, route, find the agents busy, queue up and sleep: a workflow
task, a routing local activity and a timer per task before it has done anything. Queued here instead (in
pages, with the same rows, status and receipt routing writes), their runs start *delayed* by the queue timeout:
a hand-over starts a run at once by SignalWithStart with its assignment (core.dispatch), and a run whose delay
runs out routes once and fails as timed out in the queue unless a slot is free. The free slots the agents had
are handed out right away, in dispatch order, like any freed slot.

Tasks with dependencies, and tasks allowed to wait only briefly, start and route as usual; so do the tasks of
a batch that the free slots can take at once (each is routed by its own strategy).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.db import Database
from core.routing import choose, queue_up
from models.routing import Strategy
from models.workflow_io import RouteOutcome, RouteRequest, TaskWorkflowInput

# A task that may wait only this long or less starts its run at once (a delayed start buys it nothing).
MIN_QUEUE_WAIT_SECONDS = 5.0
# Tasks queued per transaction: on SQLite a transaction holds the one write lock, which recording attempts
# needs too, so a page of a batch is queued in short steps.
QUEUE_CHUNK = 50

_Group = tuple[tuple[str, ...], float | None, tuple[str, ...]]


def queue_wait_seconds(task: TaskWorkflowInput) -> float:
    """How long the task may wait for an agent: its own queue timeout, else the policy's."""
    own = task.queue_timeout_seconds
    return task.policy.no_agent_wait_seconds if own is None else own


@dataclass(frozen=True)
class QueuedAhead:
    """The tasks now waiting in the dispatch queue, and the capable agents that have free slots to hand out."""

    task_ids: frozenset[str]
    free_agent_ids: list[str]


def _groups(tasks: Sequence[TaskWorkflowInput]) -> dict[_Group, list[TaskWorkflowInput]]:
    """The tasks that may queue ahead, by what makes an agent eligible for them."""
    groups: dict[_Group, list[TaskWorkflowInput]] = defaultdict(list)
    for task in tasks:
        if task.depends_on or queue_wait_seconds(task) < MIN_QUEUE_WAIT_SECONDS:
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


async def queue_ahead(db: Database, tasks: Sequence[TaskWorkflowInput], weights: Mapping[str, float]) -> QueuedAhead:
    """Queue the tasks of every group bigger than its agents' free slots (or behind others already waiting)."""
    queued: set[str] = set()
    free_agents: list[str] = []
    for group in _groups(tasks).values():
        started = time.perf_counter()
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
        for begin in range(0, len(group), QUEUE_CHUNK):
            async with db.transaction() as session:
                for task in group[begin : begin + QUEUE_CHUNK]:
                    decision = await queue_up(
                        session, _request(task), evaluation, reason, started, weights, start_on_handover=True
                    )
                    if decision.outcome is RouteOutcome.ALL_BUSY:
                        queued.add(task.task_id)
        free_agents += [c.agent_id for c in free]
    return QueuedAhead(frozenset(queued), list(dict.fromkeys(free_agents)))
