"""Loading routing's candidates from the registry: capable agents with their trust, capabilities and recent
assignments, and the live load (running attempts, others waiting) a decision weighs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    bindparam,
    cast,
    func,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.platform.db import driver_fetch
from ains.core.routing import adaptive as adaptive_state
from ains.models.routing import (
    Candidate,
    TagStats,
)
from ains.models.tables import Agent, AgentCapability, TaskAttempt, TaskWait


def _epoch(column: Any, dialect: str) -> ColumnElement[Any]:
    """Seconds since the epoch computed by the database: cheaper than parsing thousands of datetimes in Python."""
    if dialect == "sqlite":
        return (func.julianday(column) - 2440587.5) * 86400.0
    return func.extract("epoch", column)


def _agents_query(dialect: str, *conditions: ColumnElement[bool], inner: bool) -> Select[Any]:
    """Agents with their capability rows (those matching ``conditions``)."""
    query = select(
        Agent.id,
        Agent.endpoint_url,
        Agent.status,
        Agent.max_concurrency,
        Agent.trust_score,
        Agent.avg_response_ms,
        _epoch(Agent.last_assigned_at, dialect),
        _epoch(Agent.created_at, dialect),
        AgentCapability.tag,
        AgentCapability.version,
        AgentCapability.trust_score,
        AgentCapability.total_tasks,
    )
    on = AgentCapability.agent_id == Agent.id
    query = query.join(AgentCapability, on) if inner else query.outerjoin(AgentCapability, on)
    return query.where(*conditions)


@lru_cache(maxsize=4)
def _one_agent_query(dialect: str) -> Select[Any]:
    # Built once per dialect: a hand-over loads the releasing agent for every freed slot.
    return _agents_query(dialect, Agent.id == bindparam("b_agent"), inner=False)


def _candidates(rows: Iterable[Sequence[Any]]) -> list[Candidate]:
    """Candidates with no live load yet, one per agent, from rows of ``_agents_query``."""
    tag_stats: dict[str, dict[str, TagStats]] = {}
    first_row: dict[str, tuple[str, str, int, float, float | None, float | None, float | None]] = {}
    for (
        agent_id,
        endpoint,
        status,
        limit,
        trust,
        avg_ms,
        last,
        created,
        tag,
        version,
        tag_trust,
        samples,
    ) in rows:
        stats = tag_stats.setdefault(agent_id, {})
        if tag is not None:
            stats[tag] = TagStats(version, tag_trust, samples)
        if agent_id not in first_row:
            first_row[agent_id] = (endpoint, status, limit, trust, avg_ms, last, created)
    candidates: list[Candidate] = []
    for agent_id, stats in tag_stats.items():
        endpoint, status, limit, trust, avg_ms, last, created = first_row[agent_id]
        candidates.append(
            Candidate(
                agent_id=agent_id,
                endpoint_url=endpoint,
                available=status == "available",
                max_concurrency=limit,
                running=0,
                trust=trust,
                avg_response_ms=avg_ms,
                last_assigned_at=float(last) if last is not None else None,
                tags=stats,
                registered_at=float(created or 0.0),
            )
        )
    return candidates


async def _load(session: AsyncSession, *conditions: ColumnElement[bool], inner: bool = True) -> list[Candidate]:
    """Agents with their capability rows (those matching ``conditions``) and adaptive posteriors, as candidates
    with no live load yet."""
    query = _agents_query(session.get_bind().dialect.name, *conditions, inner=inner)
    candidates = _candidates(await (await session.connection()).execute(query))
    await adaptive_state.attach(session, candidates)  # adaptive routing's posteriors (core/routing/adaptive.py)
    return candidates


async def load_candidates(session: AsyncSession, tags: list[str], agent_id: str | None = None) -> list[Candidate]:
    """Every agent offering all ``tags`` (with its stats for those tags), straight from the registry."""
    conditions = [AgentCapability.tag.in_(tags), *([Agent.id == agent_id] if agent_id else [])]
    return [c for c in await _load(session, *conditions) if len(c.tags) == len(set(tags))]


async def load_agent(session: AsyncSession, agent_id: str) -> Candidate | None:
    """One agent with all its capabilities, straight from the registry: no live load and no adaptive
    posteriors (what the dispatch queue's filters need)."""
    query = _one_agent_query(session.get_bind().dialect.name)
    found = _candidates(await (await session.connection()).execute(query, {"b_agent": agent_id}))
    return found[0] if found else None


async def load_agents(session: AsyncSession, changed_since: datetime | None = None) -> list[Candidate]:
    """Every agent with all its capabilities, or only those changed since ``changed_since``."""
    conditions = [Agent.updated_at > changed_since] if changed_since is not None else []
    return await _load(session, *conditions, inner=False)


@dataclass(frozen=True)
class LiveLoad:
    running: dict[str, int]  # running attempts per agent, for the agents offering the tags asked about
    others_waiting: int  # other tasks in the dispatch queue whose first required tag is one of these tags


# Run by the drivers directly: this read is made for every decision, and through SQLAlchemy its parameter
# and result handling cost more than the query itself (1.8 ms against 0.8 ms on SQLite, 10,000 agents).
_LIVE_LOAD_SQL = (
    "SELECT agent_id, count(*) FROM task_attempts WHERE status = 'running' AND agent_id IN "
    "(SELECT agent_id FROM agent_capabilities WHERE tag {tags}) GROUP BY agent_id "
    "UNION ALL SELECT NULL, count(*) FROM task_waits WHERE tag {tags2} AND task_id != {task_id}"
)
_LIVE_LOAD_POSTGRES = _LIVE_LOAD_SQL.format(tags="= ANY($1::varchar[])", tags2="= ANY($1::varchar[])", task_id="$2")
# A task without requirements (none reach routing today: a task requires at least its type) counts every agent.
_LIVE_LOAD_ANY_AGENT = union_all(
    select(TaskAttempt.agent_id, func.count()).where(TaskAttempt.status == "running").group_by(TaskAttempt.agent_id),
    select(cast(null(), String), func.count()).select_from(TaskWait).where(TaskWait.task_id != bindparam("task_id")),
)


@lru_cache(maxsize=16)
def _live_load_sqlite(tag_count: int) -> str:
    tags = f"IN ({', '.join('?' * tag_count)})"
    return _LIVE_LOAD_SQL.format(tags=tags, tags2=tags, task_id="?")


async def read_live_load(session: AsyncSession, tags: list[str], task_id: str) -> LiveLoad:
    """Live load, derived from attempt rows so a crash can never leak a slot, and the routing queue's length.

    One round trip: the running counts of the agents offering any of ``tags`` and, in a row of its own with
    a NULL agent, how many other tasks are waiting (when none are, priority order cannot matter).
    """
    rows: Sequence[Sequence[Any]]
    if tags:
        rows = await driver_fetch(
            session,
            sqlite=(_live_load_sqlite(len(tags)), [*tags, *tags, task_id]),
            postgres=(_LIVE_LOAD_POSTGRES, [tags, task_id]),
        )
    else:  # a task with no requirements: every agent's load
        rows = list(await (await session.connection()).execute(_LIVE_LOAD_ANY_AGENT, {"task_id": task_id}))
    counts: dict[str, int] = {}
    others_waiting = 0
    for agent_id, n in rows:
        if agent_id is None:
            others_waiting = int(n)
        else:
            counts[agent_id] = int(n)
    return LiveLoad(running=counts, others_waiting=others_waiting)
