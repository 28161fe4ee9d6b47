"""Hand-over dispatch: a freed slot goes straight to the best-ranked waiting task that can use it.

A task that finds every capable agent busy writes a ``task_waits`` row and sleeps on a signal; it does not
poll. Whoever frees a slot (an attempt recorded, a task cancelled or abandoned, an agent registered, made
available, revived or given more slots) calls ``Dispatcher.release``: in one transaction per agent it locks
the agent's row, counts its running attempts, picks one waiting task per free slot in dispatch order
(models.dispatch), and reserves each slot by inserting the task's attempt row (the primary key (task,
attempt) means a slot is never handed out twice, and the agent row lock means no agent is ever over its
max_concurrency). After the commit each task is signalled its assignment and calls its agent at once.

A task that joined the queue before its run started (a batch bigger than its agents' free slots: core.
batch_queue) has no run yet: its hand-over starts one with the assignment in its input, eagerly (the first
workflow task comes back in the start's reply to this process's worker, skipping a trip through the task
queue: on this machine that halves the time from a freed slot to the next call). Should a run exist already
(one started to cancel the task or when its queue timeout ran out, or one started delayed before migration
0011), the assignment goes to it by SignalWithStart, which also ends a start delay.

Crash safety: a reservation carries ``handover_pending`` until its signal is delivered. A worker killed in
between leaves the flag set; the reconciler (``reconcile``, a Temporal Schedule) re-sends the signal, or
releases the slot when the task is gone, and hands out slots that stayed free while tasks waited. The worker's
hot path clears the flags of delivered hand-overs a second later, many in one write (``DeliveredFlags``); one
write each cost as much as the recording itself and made the other slots' recordings wait for it. A crash
before that write makes the reconciler re-send assignments the tasks already have, which they ignore.

Lost wake-ups: waiters and releasers each write, commit, then read (a waiter looks for a free slot once more
after its row is committed, and routes again only if it finds one; a releaser dispatches after its release is
committed), so at least one of them sees the other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

from sqlalchemy import func, select, tuple_, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from ains.core.platform.db import Database
from ains.core.platform.metrics import observe_dispatch_repairs, observe_handovers, observe_queue_wait
from ains.core.platform.settings import Settings
from ains.core.platform.temporal import is_transient
from ains.core.routing import writes
from ains.core.routing.candidates import load_agent
from ains.core.routing.queue import pick, with_running
from ains.core.tasks.dependencies import dependencies_of
from ains.core.tasks.service import queued_input, unstarted_clause, workflow_input
from ains.core.tasks.start import start_task_workflow
from ains.models.agents import kind_of_endpoint
from ains.models.contract import SLOT_ASSIGNED_SIGNAL, TASK_WORKFLOW_NAME, task_start_options
from ains.models.tables import Agent, AgentCapability, Task, TaskAttempt, TaskWait, as_utc, utcnow
from ains.models.workflow_io import SlotAssignment, TaskWorkflowInput

log = logging.getLogger("ains.dispatch")

DEADLOCK_RETRIES = 3
T = TypeVar("T")
# Queued tasks whose queue timeout ran out, started per reconciler round (the rest in the next rounds).
EXPIRED_PER_ROUND = 500
# A task still pending with no status reason this many reconciler staleness periods after it was written has
# had no first step of its run: the API process died between writing its row and starting its run (nothing
# else would ever start it), or the run waits behind a long Temporal queue. Starting it is idempotent either way.
UNSTARTED_AFTER_PERIODS = 6
UNSTARTED_PER_ROUND = 100


@dataclass(frozen=True)
class HandOver:
    task_id: str
    workflow_id: str
    assignment: SlotAssignment
    # Set when the hand-over must start the task's run (queued ahead of it): its input, the assignment in it.
    start: TaskWorkflowInput | None = None


def _assignment(
    attempt: int, agent_id: str, endpoint_url: str, avg_response_ms: float | None, reason: str
) -> SlotAssignment:
    return SlotAssignment(
        attempt=attempt,
        agent_id=agent_id,
        endpoint_url=endpoint_url,
        agent_kind=kind_of_endpoint(endpoint_url),
        reason=reason,
        agent_avg_response_ms=avg_response_ms,
    )


async def _start_input(
    session: AsyncSession, task_id: str, settings: Settings, assignment: SlotAssignment
) -> TaskWorkflowInput | None:
    task = await session.get(Task, task_id)
    return None if task is None else queued_input(task, settings, assignment)


async def _running(session: AsyncSession, agent_id: str) -> int:
    count = select(func.count()).where(TaskAttempt.agent_id == agent_id, TaskAttempt.status == "running")
    return int((await session.execute(count)).scalar_one())


async def _lock_agent(session: AsyncSession, agent_id: str) -> None:
    """On Postgres, queue behind every other decision for this agent (routing takes the same row lock)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(Agent.id).where(Agent.id == agent_id).with_for_update())


async def hand_over(
    session: AsyncSession, agent_id: str, settings: Settings, agent_locked: bool = False
) -> list[HandOver]:
    """Reserve this agent's free slots for the best-ranked waiting tasks it can serve (inside the caller's
    transaction); the tasks still have to be told (``Dispatcher.deliver``). ``agent_locked``: the transaction
    already holds the agent's row lock (recording the attempt took it), one round trip fewer on Postgres."""
    if not agent_locked:
        await _lock_agent(session, agent_id)
    agent = await load_agent(session, agent_id)
    if agent is None or not agent.available:
        return []
    running = await _running(session, agent_id)
    free = agent.max_concurrency - running
    if free <= 0:
        return []
    now = utcnow()
    aging = settings.priority_aging_seconds
    picked = await pick(session, with_running(agent, running), free, now.timestamp(), aging)
    if not picked:
        return []
    await writes.touch_agent(session, agent_id, now)
    handed: list[HandOver] = []
    for position, (task_id, attempt, workflow_id, client_id, *_rest, start_on_handover) in enumerate(picked, 1):
        if not await writes.reserve_attempt(session, task_id, attempt, agent_id, now, handover=True):
            continue  # the task routed itself meanwhile (its own decision holds the attempt)
        started = await writes.start_task(session, task_id, attempt, agent_id, now)
        await writes.leave_queue(session, task_id)
        if started is None:
            continue
        reason = (
            f"handed over: agent {agent_id} freed a slot; next in dispatch order among the tasks it can serve "
            f"(pick {position} of {len(picked)}, client {client_id})"
        )
        await writes.mark_receipt_handed_over(session, task_id, attempt, agent_id, reason, now)
        if attempt == 1:
            observe_queue_wait(started.task_type, (now - (as_utc(started.created_at) or now)).total_seconds())
        assignment = _assignment(attempt, agent_id, agent.endpoint_url, agent.avg_response_ms, reason)
        start = await _start_input(session, task_id, settings, assignment) if start_on_handover else None
        handed.append(HandOver(task_id=task_id, workflow_id=workflow_id, assignment=assignment, start=start))
    return handed


def _is_deadlock(exc: DBAPIError) -> bool:
    return "deadlock" in str(exc.orig).lower()


_ANYONE_WAITING = select(TaskWait.task_id).limit(1)  # built once: it runs after every attempt


# Delivered hand-overs per write that clears their pending flags (bounded for SQLite's variable limit).
FLAGS_PER_WRITE = 500


class DeliveredFlags:
    """Clears the ``handover_pending`` flag of delivered hand-overs: at once, or ``delay`` seconds later together
    with every other delivered meanwhile (one write instead of one each). The reconciler only looks at flags
    older than ``Settings.dispatch_reconcile_after_seconds``; keep ``delay`` well below that."""

    def __init__(self, db: Database, delay: float = 0.0) -> None:
        self._db = db
        self._delay = delay
        self._keys: set[tuple[str, int]] = set()
        self._later: asyncio.Task[None] | None = None

    async def cleared(self, handed: Iterable[HandOver]) -> None:
        self._keys.update((h.task_id, h.assignment.attempt) for h in handed)
        if self._delay <= 0:
            await self._write()
        elif self._later is None:
            self._later = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._delay)
        self._later = None
        await self._write_or_leave()

    async def flush(self) -> None:
        """Clear every flag collected so far now (run when the worker stops)."""
        if self._later is not None:
            self._later.cancel()
            self._later = None
        await self._write_or_leave()

    async def _write_or_leave(self) -> None:
        try:
            await self._write()
        except Exception as exc:  # the registry is down: the reconciler re-sends these, which is harmless
            log.warning("pending flags of delivered hand-overs not cleared: %s", exc)

    async def _write(self) -> None:
        keys, self._keys = sorted(self._keys), set()
        for begin in range(0, len(keys), FLAGS_PER_WRITE):
            async with self._db.transaction() as session:
                await session.execute(
                    update(TaskAttempt)
                    .where(tuple_(TaskAttempt.task_id, TaskAttempt.attempt).in_(keys[begin : begin + FLAGS_PER_WRITE]))
                    .values(handover_pending=False)
                )


class Dispatcher:
    """Hands freed slots over and tells the tasks; one per process (workers, API, reconciler)."""

    def __init__(
        self, db: Database, client: Client | None, settings: Settings, flags: DeliveredFlags | None = None
    ) -> None:
        self._db = db
        self._client = client
        self._settings = settings
        self._flags = flags or DeliveredFlags(db)

    @property
    def settings(self) -> Settings:
        return self._settings

    async def in_one_transaction(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """``work`` in one write transaction, run again from the start when Postgres rolled it back as the victim
        of a deadlock (two releasers crossed); ``work`` must be safe to repeat."""
        for attempt in range(DEADLOCK_RETRIES):
            try:
                async with self._db.transaction() as session:
                    return await work(session)
            except DBAPIError as exc:
                if not _is_deadlock(exc) or attempt == DEADLOCK_RETRIES - 1:
                    raise
        raise AssertionError("unreachable: the last deadlock is raised")

    async def reserve(self, agent_ids: Iterable[str]) -> list[HandOver]:
        """The hand-overs of every named agent's free slots, committed (not yet delivered)."""
        handed: list[HandOver] = []
        agents = list(dict.fromkeys(agent_ids))
        if not agents or not await self._anyone_waiting():
            return handed  # the common case: one cheap read, no lock
        for agent_id in agents:
            handed += await self.in_one_transaction(partial(hand_over, agent_id=agent_id, settings=self._settings))
        return handed

    async def _anyone_waiting(self) -> bool:
        async with self._db.session() as session:
            return (await session.execute(_ANYONE_WAITING)).first() is not None

    async def release(self, agent_ids: Iterable[str], source: str, keep: str | None = None) -> list[HandOver]:
        """Hand the agents' free slots over and signal each task, except ``keep`` (the caller itself)."""
        handed = await self.reserve(agent_ids)
        await self.announce(handed, source, keep)
        return handed

    async def announce(self, handed: Sequence[HandOver], source: str, keep: str | None = None) -> None:
        """Deliver committed hand-overs (``release``, or a caller that reserved inside its own transaction)."""
        if handed:
            observe_handovers(source, len(handed))
            await self.deliver(handed, keep=keep)

    async def deliver(self, handed: Sequence[HandOver], keep: str | None = None) -> list[HandOver]:
        """Signal each assignment; the delivered ones (and ``keep``'s) lose their pending flag. Returns the
        hand-overs whose task is gone (their slot is still reserved: see ``release_orphans``)."""
        to_signal = [h for h in handed if h.task_id != keep]
        outcomes = await asyncio.gather(*(self._signal(h) for h in to_signal))
        delivered = [h for h, ok in zip(to_signal, outcomes, strict=True) if ok is True]
        delivered += [h for h in handed if h.task_id == keep]
        if delivered:
            await self._flags.cleared(delivered)
        return [h for h, ok in zip(to_signal, outcomes, strict=True) if ok is None]

    async def _signal(self, handed: HandOver) -> bool | None:
        """True when delivered, None when the workflow is gone, False when Temporal could not be reached."""
        if self._client is None:
            return False
        try:
            if handed.start is None:
                handle = self._client.get_workflow_handle(handed.workflow_id)
                await handle.signal(SLOT_ASSIGNED_SIGNAL, handed.assignment)
                return True
            try:
                await self._client.start_workflow(
                    TASK_WORKFLOW_NAME, handed.start, request_eager_start=True, **task_start_options(handed.start)
                )
                return True
            except WorkflowAlreadyStartedError:
                pass  # its run exists (see the module's docstring): SignalWithStart reaches it, delayed or not
            await self._client.start_workflow(
                TASK_WORKFLOW_NAME,
                handed.start,
                start_signal=SLOT_ASSIGNED_SIGNAL,
                start_signal_args=[handed.assignment],
                **task_start_options(handed.start),
            )
            return True
        except WorkflowAlreadyStartedError:
            return None  # its run is closed (cancelled, say) and its id may not be reused
        except RPCError as exc:
            if exc.status is RPCStatusCode.NOT_FOUND:
                return None
            log.warning("could not signal %s its assignment: %s", handed.workflow_id, exc.message)
            return False

    async def start_expired(self) -> int:
        """Start the runs of queued tasks without one whose queue timeout ran out (up to EXPIRED_PER_ROUND): each
        routes once and fails as no_agent_available unless a slot is free. Returns how many were started."""
        if self._client is None:
            return 0
        async with self._db.session() as session:
            expired = await session.execute(
                select(Task)
                .join(TaskWait, TaskWait.task_id == Task.id)
                .where(TaskWait.expires < time.time())
                .order_by(TaskWait.expires)
                .limit(EXPIRED_PER_ROUND)
            )
            tasks = list(expired.scalars())
        if not tasks:
            return 0
        for task in tasks:  # one at a time: a large expiry must not flood Temporal
            await start_task_workflow(self._client, queued_input(task, self._settings))
        async with self._db.transaction() as session:
            await session.execute(
                update(TaskWait).where(TaskWait.task_id.in_([task.id for task in tasks])).values(expires=None)
            )
        return len(tasks)

    async def start_unstarted(self, written_before: datetime) -> int:
        """Start (idempotently) the runs of tasks written before ``written_before`` whose run has taken no step
        (up to UNSTARTED_PER_ROUND, oldest first). Members of a batch or composition are their parent's to start.
        Returns how many starts were made."""
        if self._client is None:
            return 0
        async with self._db.session() as session:
            found = await session.execute(
                select(Task)
                .where(unstarted_clause(), Task.created_at < written_before)
                .order_by(Task.created_at)
                .limit(UNSTARTED_PER_ROUND)
            )
            tasks = list(found.scalars())
            depends_on = await dependencies_of(session, [task.id for task in tasks])
        started = 0
        for task in tasks:
            try:
                await start_task_workflow(self._client, workflow_input(task, self._settings, depends_on.get(task.id)))
            except RPCError as exc:
                if is_transient(exc):
                    raise  # Temporal is down or overloaded: the next round tries them all again
                # Refused for this task alone (say, a namespace without AINS's search attributes): the others
                # behind it in the sweep's order must not wait for it.
                log.error("could not start the run of task %s (the next round tries again): %s", task.id, exc.message)
                continue
            started += 1
        return started

    async def release_orphans(self, handed: Sequence[HandOver]) -> set[str]:
        """Give back slots reserved for tasks whose workflow is gone; returns the agents that have them again."""
        agents: set[str] = set()
        now = utcnow()
        async with self._db.transaction() as session:
            for h in handed:
                result = await session.execute(
                    update(TaskAttempt)
                    .where(
                        TaskAttempt.task_id == h.task_id,
                        TaskAttempt.attempt == h.assignment.attempt,
                        TaskAttempt.status == "running",
                    )
                    .values(status="cancelled", finished_at=now, handover_pending=False)
                )
                if getattr(result, "rowcount", 0):
                    agents.add(h.assignment.agent_id)
        return agents


async def _stale_reservations(session: AsyncSession, before: datetime, settings: Settings) -> list[HandOver]:
    """Reservations never delivered. A first attempt's is re-sent as a start (``Dispatcher._signal``): the task
    may have been queued ahead of its run; for a run that exists it is just the signal."""
    rows = await session.execute(
        select(TaskAttempt.attempt, TaskAttempt.agent_id, Task, Agent.endpoint_url, Agent.avg_response_ms)
        .join(Task, Task.id == TaskAttempt.task_id)
        .outerjoin(Agent, Agent.id == TaskAttempt.agent_id)
        .where(
            TaskAttempt.handover_pending.is_(True),
            TaskAttempt.status == "running",
            TaskAttempt.started_at < before,
        )
    )
    handed: list[HandOver] = []
    for attempt, agent_id, task, endpoint, avg_response_ms in rows.tuples():
        reason = f"handed over: agent {agent_id} freed a slot (re-sent by the dispatch reconciler)"
        assignment = _assignment(attempt, agent_id, endpoint or "", avg_response_ms, reason)
        start = queued_input(task, settings, assignment) if attempt == 1 else None
        handed.append(HandOver(task_id=task.id, workflow_id=task.workflow_id, assignment=assignment, start=start))
    return handed


async def _agents_with_idle_slots(session: AsyncSession, waiting_since: float) -> list[str]:
    """Available agents with a free slot and a capability some task has waited for since ``waiting_since``."""
    waited_tags = select(TaskWait.tag).where(TaskWait.since < waiting_since).distinct().scalar_subquery()
    running = (
        select(TaskAttempt.agent_id, func.count().label("n"))
        .where(TaskAttempt.status == "running")
        .group_by(TaskAttempt.agent_id)
        .subquery()
    )
    rows = await session.execute(
        select(Agent.id)
        .outerjoin(running, running.c.agent_id == Agent.id)
        .where(
            Agent.status == "available",
            func.coalesce(running.c.n, 0) < Agent.max_concurrency,
            Agent.id.in_(select(AgentCapability.agent_id).where(AgentCapability.tag.in_(waited_tags))),
        )
    )
    return [agent_id for (agent_id,) in rows]


@dataclass(frozen=True)
class Repairs:
    resent: int
    released: int
    handed_over: int
    expired: int = 0
    unstarted: int = 0


async def reconcile(dispatcher: Dispatcher, db: Database, stale_seconds: float) -> Repairs:
    """Repair what a crash between reserving and signalling (or a lost wake-up) left behind."""
    before = utcnow() - timedelta(seconds=stale_seconds)
    async with db.session() as session:
        stale = await _stale_reservations(session, before, dispatcher.settings)
    gone = await dispatcher.deliver(stale) if stale else []
    freed = await dispatcher.release_orphans(gone) if gone else set()
    async with db.session() as session:
        idle = await _agents_with_idle_slots(session, time.time() - stale_seconds)
    handed = await dispatcher.release([*freed, *idle], source="reconciler")
    expired = await dispatcher.start_expired()
    unstarted = await dispatcher.start_unstarted(utcnow() - timedelta(seconds=stale_seconds * UNSTARTED_AFTER_PERIODS))
    repairs = Repairs(
        resent=len(stale) - len(gone),
        released=len(gone),
        handed_over=len(handed),
        expired=expired,
        unstarted=unstarted,
    )
    observe_dispatch_repairs(asdict(repairs))
    return repairs
