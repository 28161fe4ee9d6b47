"""Read-only figures for the operator dashboard: task throughput per minute, the queue, capacity per
capability, and the attempts of a task or an agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from ains.core.agents.registry import running_count_column
from ains.models.tables import Agent, AgentCapability, Composition, Task, TaskAttempt, as_utc, utcnow

FINAL_STATUSES = ("succeeded", "failed", "timed_out", "cancelled")
QUEUED_STATUSES = ("pending", "routing")
MAX_ATTEMPTS_SHOWN = 100


@dataclass
class Throughput:
    """Per minute of the window (oldest first, ``HH:MM`` UTC): tasks submitted, tasks finished by status, and
    tasks waiting for their first agent at the end of the minute."""

    minutes: list[str]
    submitted: list[int]
    finished: dict[str, list[int]]
    waiting: list[int]

    @property
    def success_rate(self) -> float | None:
        done = sum(sum(v) for v in self.finished.values())
        return None if done == 0 else sum(self.finished["succeeded"]) / done


@dataclass
class Queue:
    pending: int
    routing: int
    oldest_created_at: datetime | None

    @property
    def depth(self) -> int:
        return self.pending + self.routing


@dataclass
class CapabilityLoad:
    tag: str
    agents: int
    available_agents: int
    running: int
    capacity: int  # sum of max_concurrency over available agents


@dataclass
class AttemptRow:
    task_id: str
    attempt: int
    agent_id: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    duration_ms: float | None
    error: str | None


@dataclass
class CompositionRow:
    id: str
    kind: str
    name: str | None
    status: str
    steps: int
    created_at: datetime
    completed_at: datetime | None = None
    client_id: str = field(default="")


def _minute(session: AsyncSession, column: ColumnElement[Any] | InstrumentedAttribute[Any]) -> ColumnElement[str]:
    """The UTC minute of a timestamp as ``YYYY-MM-DD HH:MM``, in the database (one GROUP BY per query)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.date_trunc("minute", func.timezone("UTC", column)), "YYYY-MM-DD HH24:MI")
    # SQLite stores UTC timestamps as ISO text: the first 16 characters are the minute.
    return func.substr(column, 1, 16)


def _own(client_id: str | None) -> list[ColumnElement[bool]]:
    return [] if client_id is None else [Task.client_id == client_id]


async def throughput(
    session: AsyncSession, client_id: str | None, minutes: int = 60, now: datetime | None = None
) -> Throughput:
    """Tasks per minute over the last ``minutes``: submitted (by creation) and finished (by final status)."""
    now = now or utcnow()
    start = (now - timedelta(minutes=minutes - 1)).replace(second=0, microsecond=0)
    labels = [(start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M") for i in range(minutes)]
    index = {label: i for i, label in enumerate(labels)}
    submitted = [0] * minutes
    finished = {status: [0] * minutes for status in FINAL_STATUSES}

    created = _minute(session, Task.created_at)
    rows = await session.execute(
        select(created, func.count()).where(Task.created_at >= start, *_own(client_id)).group_by(created)
    )
    for minute, count in rows:
        if minute in index:
            submitted[index[minute]] = int(count)
    completed = _minute(session, Task.completed_at)
    finished_rows = await session.execute(
        select(completed, Task.status, func.count())
        .where(Task.completed_at >= start, Task.status.in_(FINAL_STATUSES), *_own(client_id))
        .group_by(completed, Task.status)
    )
    for minute, status, count in finished_rows.tuples():
        if minute in index:
            finished[status][index[minute]] = int(count)
    waiting = await _waiting_per_minute(session, client_id, start, index, submitted)
    return Throughput(minutes=[label[11:] for label in labels], submitted=submitted, finished=finished, waiting=waiting)


async def _waiting_per_minute(
    session: AsyncSession, client_id: str | None, start: datetime, index: dict[str, int], submitted: list[int]
) -> list[int]:
    """Tasks submitted but not yet given to an agent, at the end of each minute, without a history table: the
    number waiting now, walked back minute by minute (minus the tasks submitted in a minute, plus those that
    left the queue in it: first routed to an agent, or finished without one, e.g. cancelled)."""
    now = await session.scalar(
        select(func.count()).where(
            Task.status.in_(QUEUED_STATUSES), Task.started_at.is_(None), Task.completed_at.is_(None), *_own(client_id)
        )
    )
    left_at = func.coalesce(Task.started_at, Task.completed_at)
    minute = _minute(session, left_at)
    rows = await session.execute(
        select(minute, func.count())
        .where(
            or_(Task.started_at >= start, and_(Task.started_at.is_(None), Task.completed_at >= start)),
            *_own(client_id),
        )
        .group_by(minute)
    )
    left = [0] * len(submitted)
    for label, count in rows.tuples():
        if label in index:
            left[index[label]] = int(count)
    waiting = [0] * len(submitted)
    waiting[-1] = int(now or 0)
    for i in range(len(submitted) - 1, 0, -1):
        waiting[i - 1] = max(0, waiting[i] - submitted[i] + left[i])
    return waiting


async def queue(session: AsyncSession, client_id: str | None) -> Queue:
    """Tasks not yet given to an agent: pending (incl. waiting for dependencies) and routing (waiting for one)."""
    rows = await session.execute(
        select(Task.status, func.count(), func.min(Task.created_at))
        .where(Task.status.in_(QUEUED_STATUSES), *_own(client_id))
        .group_by(Task.status)
    )
    counts = {status: 0 for status in QUEUED_STATUSES}
    oldest: datetime | None = None
    for status, count, first in rows.tuples():
        counts[status] = int(count)
        created = as_utc(first)
        if created is not None and (oldest is None or created < oldest):
            oldest = created
    return Queue(pending=counts["pending"], routing=counts["routing"], oldest_created_at=oldest)


async def capacity_by_capability(session: AsyncSession) -> list[CapabilityLoad]:
    """Running attempts against the capacity of available agents, per capability tag (an agent with several
    tags counts under each)."""
    rows = await session.execute(
        select(AgentCapability.tag, Agent.status, Agent.max_concurrency, running_count_column()).join(
            Agent, Agent.id == AgentCapability.agent_id
        )
    )
    loads: dict[str, CapabilityLoad] = {}
    for tag, status, max_concurrency, running in rows:
        load = loads.setdefault(tag, CapabilityLoad(tag=tag, agents=0, available_agents=0, running=0, capacity=0))
        load.agents += 1
        load.running += int(running or 0)
        if status == "available":
            load.available_agents += 1
            load.capacity += int(max_concurrency)
    return sorted(loads.values(), key=lambda load: (-load.running, load.tag))


def _attempt(row: TaskAttempt) -> AttemptRow:
    return AttemptRow(
        task_id=row.task_id,
        attempt=row.attempt,
        agent_id=row.agent_id,
        status=row.status,
        started_at=as_utc(row.started_at) or utcnow(),
        finished_at=as_utc(row.finished_at),
        duration_ms=row.duration_ms,
        error=row.error,
    )


async def task_attempts(session: AsyncSession, task_id: str) -> list[AttemptRow]:
    """Every attempt of one task, first first (the caller has checked the task is visible)."""
    rows = await session.execute(
        select(TaskAttempt).where(TaskAttempt.task_id == task_id).order_by(TaskAttempt.attempt)
    )
    return [_attempt(row) for row in rows.scalars()]


async def agent_attempts(
    session: AsyncSession, agent_id: str, client_id: str | None, limit: int = 20
) -> list[AttemptRow]:
    """An agent's most recent attempts, newest first; a client sees only attempts of its own tasks."""
    query = select(TaskAttempt).where(TaskAttempt.agent_id == agent_id)
    if client_id is not None:
        query = query.join(Task, Task.id == TaskAttempt.task_id).where(Task.client_id == client_id)
    rows = await session.execute(query.order_by(TaskAttempt.started_at.desc()).limit(min(limit, MAX_ATTEMPTS_SHOWN)))
    return [_attempt(row) for row in rows.scalars()]


async def recent_compositions(
    session: AsyncSession, client_id: str | None, kind: str | None = None, limit: int = 50
) -> list[CompositionRow]:
    """Chains and plans, newest first; a client sees only its own."""
    query = select(Composition)
    if client_id is not None:
        query = query.where(Composition.client_id == client_id)
    if kind is not None:
        query = query.where(Composition.kind == kind)
    rows = await session.execute(query.order_by(Composition.created_at.desc(), Composition.id.desc()).limit(limit))
    return [
        CompositionRow(
            id=row.id,
            kind=row.kind,
            name=row.name,
            status=row.status,
            steps=len(row.steps or {}),
            created_at=as_utc(row.created_at) or utcnow(),
            completed_at=as_utc(row.completed_at),
            client_id=row.client_id,
        )
        for row in rows.scalars()
    ]
