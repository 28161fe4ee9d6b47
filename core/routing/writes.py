"""The routing step's writes, as hand-written SQL run by the database driver inside the session's transaction.

An assigned attempt makes four writes (agent, attempt, task, receipt). Through SQLAlchemy each costs about
0.5 ms of Python around a statement the database runs in a fraction of that, which was most of the routing
step; here each is one prepared statement per backend. Timestamps are encoded by the columns' own SQLAlchemy
types, so the rows are exactly those an ORM write would store; the receipt's candidates are JSON text made by
orjson (the same document json.dumps makes, ten times faster on the tens of kB a receipt holds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.platform.db import driver_fetch
from ains.models.tables import Agent, Task

_TOUCH_AGENT = "UPDATE agents SET last_assigned_at = {now}, updated_at = {now} WHERE id = {agent}"
_RESERVE = (
    "INSERT INTO task_attempts (task_id, attempt, agent_id, status, started_at, handover_pending) "
    "VALUES ({task}, {attempt}, {agent}, 'running', {now}, {handover}) "
    "ON CONFLICT (task_id, attempt) DO NOTHING RETURNING agent_id"
)
_LEAVE_QUEUE = "DELETE FROM task_waits WHERE task_id = {task}"
_TASK_TO_QUEUE = (
    "SELECT status, status_reason, workflow_id, client_id, priority, created_at FROM tasks WHERE id = {task}"
)
_SET_WAITING = "UPDATE tasks SET status = 'routing', status_reason = {reason}, updated_at = {now} WHERE id = {task}"
_HANDED_OVER_RECEIPT = (
    "UPDATE routing_receipts SET outcome = 'assigned', winner_agent_id = {agent}, reason = {reason}, "
    "updated_at = {now} WHERE task_id = {task} AND attempt = {attempt}"
)
# The running count (Postgres only) is a later statement than the agent update, so it sees every attempt
# committed by the decisions that held the agent's row lock before this one.
_START_TASK = (
    "UPDATE tasks SET status = 'running', status_reason = NULL, assigned_agent_id = {agent}, "
    "attempts = {attempt}, started_at = coalesce(started_at, {now}), updated_at = {now} "
    "WHERE id = {task} RETURNING type, created_at{running}"
)
_RUNNING_NOW = ", (SELECT count(*) FROM task_attempts WHERE agent_id = {agent} AND status = 'running')"
_RECEIPT_COLUMNS = (
    "task_id",
    "attempt",
    "strategy",
    "outcome",
    "winner_agent_id",
    "reason",
    "candidates",
    "candidates_total",
    "duration_ms",
    "created_at",
    "updated_at",
)
_RECEIPT_UPDATED = [c for c in _RECEIPT_COLUMNS if c not in ("task_id", "attempt", "created_at")]
_RECEIPT = (
    f"INSERT INTO routing_receipts ({', '.join(_RECEIPT_COLUMNS)}) VALUES ({{values}}) "
    "ON CONFLICT (task_id, attempt) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _RECEIPT_UPDATED)
)


@dataclass(frozen=True)
class _Sql:
    """One backend's statements and its parameter style."""

    touch_agent: str
    reserve: str
    start_task: str
    receipt: str
    leave_queue: str
    handed_over_receipt: str
    task_to_queue: str
    set_waiting: str


def _build(postgres: bool) -> _Sql:
    if postgres:
        touch = _TOUCH_AGENT.format(now="$1", agent="$2")
        reserve = _RESERVE.format(task="$1", attempt="$2", agent="$3", now="$4", handover="$5")
        running = _RUNNING_NOW.format(agent="$1")
        start = _START_TASK.format(agent="$1", attempt="$2", now="$3", task="$4", running=running)
        values = ", ".join(f"${i}{'::json' if c == 'candidates' else ''}" for i, c in enumerate(_RECEIPT_COLUMNS, 1))
        leave = _LEAVE_QUEUE.format(task="$1")
        handed = _HANDED_OVER_RECEIPT.format(agent="$1", reason="$2", now="$3", task="$4", attempt="$5")
        to_queue = _TASK_TO_QUEUE.format(task="$1")
        waiting = _SET_WAITING.format(reason="$1", now="$2", task="$3")
    else:  # ? placeholders, bound in order of appearance
        touch = _TOUCH_AGENT.format(now="?", agent="?")
        reserve = _RESERVE.format(task="?", attempt="?", agent="?", now="?", handover="?")
        start = _START_TASK.format(agent="?", attempt="?", now="?", task="?", running="")
        values = ", ".join("?" for _ in _RECEIPT_COLUMNS)
        leave = _LEAVE_QUEUE.format(task="?")
        handed = _HANDED_OVER_RECEIPT.format(agent="?", reason="?", now="?", task="?", attempt="?")
        to_queue = _TASK_TO_QUEUE.format(task="?")
        waiting = _SET_WAITING.format(reason="?", now="?", task="?")
    return _Sql(touch, reserve, start, _RECEIPT.format(values=values), leave, handed, to_queue, waiting)


_POSTGRES = _build(postgres=True)
_SQLITE = _build(postgres=False)


class _Codecs:
    """The columns' own encoders and decoders for the driver's dialect, looked up once per dialect."""

    def __init__(self, dialect: Dialect) -> None:
        def encoder(column: ColumnElement[Any]) -> Callable[[Any], Any]:
            process = column.type.dialect_impl(dialect).bind_processor(dialect)
            return process if process is not None else _same

        def decoder(column: ColumnElement[Any]) -> Callable[[Any], Any]:
            process = column.type.dialect_impl(dialect).result_processor(dialect, None)
            return process if process is not None else _same

        self.time = encoder(Agent.__table__.c.updated_at)
        self.created_at = decoder(Task.__table__.c.created_at)


def _same(value: Any) -> Any:
    return value


_CODECS: dict[str, _Codecs] = {}


def _codecs(session: AsyncSession) -> _Codecs:
    dialect = session.get_bind().dialect
    found = _CODECS.get(dialect.name)
    if found is None:
        found = _CODECS[dialect.name] = _Codecs(dialect)
    return found


@dataclass(frozen=True)
class TaskToQueue:
    status: str
    status_reason: str | None
    workflow_id: str
    client_id: str
    priority: int
    created_at: datetime | None


async def task_to_queue(session: AsyncSession, task_id: str) -> TaskToQueue | None:
    """What joining the dispatch queue needs to know of a task; None when the task row does not exist."""
    key = (task_id,)
    rows = await driver_fetch(session, sqlite=(_SQLITE.task_to_queue, key), postgres=(_POSTGRES.task_to_queue, key))
    if not rows:
        return None
    status, reason, workflow_id, client_id, priority, created_at = rows[0]
    return TaskToQueue(status, reason, workflow_id, client_id, priority, _codecs(session).created_at(created_at))


async def set_waiting(session: AsyncSession, task_id: str, reason: str, now: datetime) -> None:
    """The task waits in the dispatch queue (status ``routing``) for ``reason``."""
    params = (reason, _codecs(session).time(now), task_id)
    await driver_fetch(session, sqlite=(_SQLITE.set_waiting, params), postgres=(_POSTGRES.set_waiting, params))


@dataclass(frozen=True)
class StartedTask:
    task_type: str
    created_at: datetime | None
    running_on_agent: int | None  # the agent's running attempts after this one (Postgres only)


async def touch_agent(session: AsyncSession, agent_id: str, now: datetime) -> None:
    """Mark the agent as just assigned; on Postgres this row lock orders concurrent decisions for it."""
    when = _codecs(session).time(now)
    await driver_fetch(
        session,
        sqlite=(_SQLITE.touch_agent, (when, when, agent_id)),
        postgres=(_POSTGRES.touch_agent, (when, agent_id)),
    )


async def reserve_attempt(
    session: AsyncSession, task_id: str, attempt: int, agent_id: str, now: datetime, handover: bool = False
) -> bool:
    """Insert the running attempt row that holds the agent's slot; False when this attempt already has one.

    ``handover``: reserved for a waiting task that is yet to be told (see core.routing.dispatch).
    """
    params = (task_id, attempt, agent_id, _codecs(session).time(now), handover)
    return bool(await driver_fetch(session, sqlite=(_SQLITE.reserve, params), postgres=(_POSTGRES.reserve, params)))


async def leave_queue(session: AsyncSession, task_id: str) -> None:
    """The task no longer waits for a slot (it has one, or it finished)."""
    await driver_fetch(session, sqlite=(_SQLITE.leave_queue, (task_id,)), postgres=(_POSTGRES.leave_queue, (task_id,)))


async def mark_receipt_handed_over(
    session: AsyncSession, task_id: str, attempt: int, agent_id: str, reason: str, now: datetime
) -> None:
    """The waiting receipt becomes the assignment; its candidates stay those of the task's last routing."""
    params = (agent_id, reason, _codecs(session).time(now), task_id, attempt)
    await driver_fetch(
        session, sqlite=(_SQLITE.handed_over_receipt, params), postgres=(_POSTGRES.handed_over_receipt, params)
    )


async def start_task(
    session: AsyncSession, task_id: str, attempt: int, agent_id: str, now: datetime
) -> StartedTask | None:
    """Set the task running on ``agent_id``; None when the task row does not exist.

    On Postgres the row also carries the agent's running count (two workers may pick the same last free slot;
    SQLite runs one writer at a time, so there the load a decision read is still true when it writes).
    """
    codecs = _codecs(session)
    when = codecs.time(now)
    rows = await driver_fetch(
        session,
        sqlite=(_SQLITE.start_task, (agent_id, attempt, when, when, task_id)),
        postgres=(_POSTGRES.start_task, (agent_id, attempt, when, task_id)),
    )
    if not rows:
        return None
    row = rows[0]
    return StartedTask(
        task_type=row[0],
        created_at=codecs.created_at(row[1]),
        running_on_agent=int(row[2]) if len(row) > 2 else None,
    )


async def upsert_receipt(session: AsyncSession, values: dict[str, Any]) -> None:
    """One receipt row per (task, attempt), replaced in place while the task waits for an agent."""
    codecs = _codecs(session)
    encoded = dict(values)
    # orjson rather than the column's json.dumps: a receipt is tens of kB of floats, written on every decision.
    encoded["candidates"] = orjson.dumps(values["candidates"]).decode()
    encoded["created_at"] = codecs.time(values["created_at"])
    encoded["updated_at"] = codecs.time(values["updated_at"])
    params = [encoded[column] for column in _RECEIPT_COLUMNS]
    await driver_fetch(session, sqlite=(_SQLITE.receipt, params), postgres=(_POSTGRES.receipt, params))
