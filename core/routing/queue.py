"""The dispatch queue: tasks waiting for a slot (``task_waits``) and the order a freed slot is handed out in.

``enqueue`` is called by routing (core.routing.decide) in its transaction; ``pick`` by the dispatcher
(core.routing.dispatch) while it holds the releasing agent's row lock. The order itself is models.dispatch.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import and_, func, insert, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.platform.db import driver_fetch
from ains.models.capabilities import parse_requirement
from ains.models.dispatch import class_order
from ains.models.routing import Candidate, LiveState, RoutingQuery, Strategy, accepts
from ains.models.tables import Agent, AgentCapability, TaskAttempt, TaskWait
from ains.models.tasks import WaitingAgent, WaitingView

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
    start_on_handover: bool = False  # queued ahead of its run (TaskWorkflowInput.queued): no run yet
    expires: float | None = None  # epoch seconds: a task without a run has waited its queue timeout (the reconciler)


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


# The queue's frontier: the smallest tag still waiting; with nothing waiting, the latest tag any client was given.
_FRONTIER = "SELECT coalesce((SELECT min(vtag) FROM task_waits), (SELECT max(vtag) FROM fair_share_clocks), 0.0)"
_WAITING_ATTEMPT = "SELECT attempt FROM task_waits WHERE task_id = {task}"
_WAITING_ATTEMPT_SQLITE = _WAITING_ATTEMPT.format(task="?")
_WAITING_ATTEMPT_POSTGRES = _WAITING_ATTEMPT.format(task="$1")
_WAIT_COLUMNS = (
    "task_id",
    "attempt",
    "workflow_id",
    "client_id",
    "priority",
    "tag",
    "requirements",
    "min_trust",
    "excluded_agent_ids",
    "failed_agent_ids",
    "created",
    "since",
    "vtag",
    "start_on_handover",
    "expires",
)
_JSON_COLUMNS = ("requirements", "excluded_agent_ids", "failed_agent_ids")
_WAIT = (
    f"INSERT INTO task_waits ({', '.join(_WAIT_COLUMNS)}) VALUES ({{values}}) ON CONFLICT (task_id) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _WAIT_COLUMNS[1:])
)
_WAIT_POSTGRES = _WAIT.format(
    values=", ".join(f"${i}{'::json' if c in _JSON_COLUMNS else ''}" for i, c in enumerate(_WAIT_COLUMNS, 1))
)
_WAIT_SQLITE = _WAIT.format(values=", ".join("?" for _ in _WAIT_COLUMNS))


async def _fair_share_tags(session: AsyncSession, client_id: str, weight: float, count: int = 1) -> list[float]:
    """The next ``count`` tags of ``client_id``, one turn (1 / weight) apart: after its previous one, and no
    earlier than the queue's frontier; allotted by one clock update."""
    frontier = float((await driver_fetch(session, sqlite=(_FRONTIER, ()), postgres=(_FRONTIER, ())))[0][0])
    step = 1.0 / weight
    span = (client_id, frontier, step * count)
    last = float(
        (await driver_fetch(session, sqlite=(_NEXT_TAG_SQLITE, span), postgres=(_NEXT_TAG_POSTGRES, span)))[0][0]
    )
    return [last - step * (count - 1 - turn) for turn in range(count)]


def _index_tag(requirements: Sequence[str]) -> str:
    """The waiting row's index tag: the first of its required tags, sorted."""
    return min((parse_requirement(r).tag for r in requirements), default="")


async def enqueue(session: AsyncSession, waiter: Waiter, now: float, weight: float) -> None:
    """Record that ``waiter`` waits for a slot; a task already waiting for this attempt keeps its place.

    Hand-written SQL run by the driver: every task that finds its agents busy passes here (see
    core/routing/writes.py for why)."""
    key = (waiter.task_id,)
    existing = await driver_fetch(
        session, sqlite=(_WAITING_ATTEMPT_SQLITE, key), postgres=(_WAITING_ATTEMPT_POSTGRES, key)
    )
    if existing and existing[0][0] == waiter.attempt:
        return
    values = (
        waiter.task_id,
        waiter.attempt,
        waiter.workflow_id,
        waiter.client_id,
        waiter.priority,
        _index_tag(waiter.requirements),
        orjson.dumps(waiter.requirements).decode(),
        waiter.min_trust,
        orjson.dumps(waiter.excluded_agent_ids).decode(),
        orjson.dumps(waiter.failed_agent_ids).decode(),
        waiter.created,
        now,
        (await _fair_share_tags(session, waiter.client_id, weight))[0],
        waiter.start_on_handover,
        waiter.expires,
    )
    await driver_fetch(session, sqlite=(_WAIT_SQLITE, values), postgres=(_WAIT_POSTGRES, values))


async def enqueue_many(
    session: AsyncSession, waiters: Sequence[Waiter], now: float, weights: Mapping[str, float]
) -> None:
    """``enqueue`` for many tasks at once (a batch joining the queue): tasks already waiting keep their place;
    each client's new tasks take consecutive turns, allotted by one clock update per client."""
    ids = [w.task_id for w in waiters]
    waiting = set((await session.execute(select(TaskWait.task_id).where(TaskWait.task_id.in_(ids)))).scalars())
    by_client: dict[str, list[Waiter]] = defaultdict(list)
    for waiter in waiters:
        if waiter.task_id not in waiting:
            by_client[waiter.client_id].append(waiter)
    if not by_client:
        return
    rows: list[dict[str, Any]] = []
    for client_id, group in by_client.items():
        tags = await _fair_share_tags(session, client_id, weights.get(client_id, 1.0), len(group))
        for waiter, vtag in zip(group, tags, strict=True):
            rows.append(
                {
                    "task_id": waiter.task_id,
                    "attempt": waiter.attempt,
                    "workflow_id": waiter.workflow_id,
                    "client_id": client_id,
                    "priority": waiter.priority,
                    "tag": _index_tag(waiter.requirements),
                    "requirements": waiter.requirements,
                    "min_trust": waiter.min_trust,
                    "excluded_agent_ids": waiter.excluded_agent_ids,
                    "failed_agent_ids": waiter.failed_agent_ids,
                    "created": waiter.created,
                    "since": now,
                    "vtag": vtag,
                    "start_on_handover": waiter.start_on_handover,
                    "expires": waiter.expires,
                }
            )
    await session.execute(insert(TaskWait), rows)


def _query_of(row: Sequence[Any]) -> RoutingQuery:
    _, _, _, _, requirements, min_trust, excluded, failed, *_ = row
    return RoutingQuery(
        requirements=[parse_requirement(r) for r in requirements],
        strategy=Strategy.LEAST_LOADED,
        min_trust=min_trust,
        excluded=frozenset(excluded or []),
        failed_on_task=frozenset(failed or []),
    )


_HEADS = "SELECT priority, min(created) FROM task_waits WHERE tag {tags} GROUP BY priority"
_PAGE = (
    "SELECT task_id, attempt, workflow_id, client_id, requirements, min_trust, excluded_agent_ids, "
    "failed_agent_ids, created, vtag, start_on_handover FROM task_waits WHERE tag {tags} AND priority = {priority} "
    "ORDER BY vtag, created, task_id LIMIT {limit} OFFSET {offset}"
)
_HEADS_POSTGRES = _HEADS.format(tags="= ANY($1::varchar[])")
# Rows another releaser is handing out right now are skipped, not waited for.
_PAGE_POSTGRES = (
    _PAGE.format(tags="= ANY($1::varchar[])", priority="$2", limit="$3", offset="$4") + " FOR UPDATE SKIP LOCKED"
)


@lru_cache(maxsize=16)
def _in_tags_sqlite(count: int) -> tuple[str, str]:
    tags = f"IN ({', '.join('?' * count)})"
    return _HEADS.format(tags=tags), _PAGE.format(tags=tags, priority="?", limit="?", offset="?")


def _decoded(row: Sequence[Any]) -> tuple[Any, ...]:
    """A waiting row with its JSON columns as lists (SQLite hands them over as text)."""
    values = list(row)
    for index in (4, 6, 7):
        if isinstance(values[index], str):
            values[index] = orjson.loads(values[index])
    return tuple(values)


async def pick(
    session: AsyncSession, agent: Candidate, free: int, now: float, aging_seconds: float
) -> list[Sequence[Any]]:
    """Up to ``free`` waiting rows this agent can serve, in dispatch order (rows others are picking skipped)."""
    tags = sorted(agent.tags)
    if not tags:
        return []
    heads_sqlite, page_sqlite = _in_tags_sqlite(len(tags))
    heads = await driver_fetch(session, sqlite=(heads_sqlite, tags), postgres=(_HEADS_POSTGRES, (tags,)))
    picked: list[Sequence[Any]] = []
    running = agent.running
    for priority in class_order(((p, float(c)) for p, c in heads), now, aging_seconds):
        for page in range(PICK_PAGES):
            bounds = (priority, PICK_PAGE, page * PICK_PAGE)
            rows = await driver_fetch(
                session, sqlite=(page_sqlite, (*tags, *bounds)), postgres=(_PAGE_POSTGRES, (tags, *bounds))
            )
            for row in map(_decoded, rows):
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
