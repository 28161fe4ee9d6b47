"""Submitting, reading, listing and cancelling tasks."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from ains.core.access.ownership import owned
from ains.core.composition.templates import count_use as count_template_use
from ains.core.composition.templates import resolve as resolve_template
from ains.core.platform.db import Database
from ains.core.platform.errors import Conflict, InvalidInput, PayloadTooLarge, Unavailable
from ains.core.platform.idempotency import create_once, idempotent_id, key_reused, request_hash
from ains.core.platform.json_safety import find_unsafe
from ains.core.platform.pagination import Keyset
from ains.core.platform.settings import Settings
from ains.core.platform.url_safety import UrlPolicy, check_url
from ains.core.routing.adaptive import tuning_for
from ains.core.routing.queue import waiting_view
from ains.core.tasks.dependencies import dependencies_of
from ains.core.tasks.start import start_task_workflow
from ains.models.common import Page
from ains.models.contract import ALL_QUEUES, task_workflow_id
from ains.models.feedback import Objectives
from ains.models.routing import Strategy
from ains.models.tables import RoutingReceipt, Task, TaskDependency, TaskWait, as_utc, utcnow
from ains.models.tasks import (
    CandidateView,
    RoutingReceiptView,
    TaskAccepted,
    TaskCreate,
    TaskRoutingView,
    TaskStatus,
    TaskView,
)
from ains.models.workflow_io import ROUTED_CALLS, ExecutionPolicy, RetrySpec, SlotAssignment, TaskWorkflowInput

# Starts a task's run: core.tasks.start.start_task_workflow bound to a client, or the API's background starter.
StartRun = Callable[[TaskWorkflowInput], Awaitable[None]]

MAX_PAGE_SIZE = 500
# Cancelling a task whose run does not exist yet (just handed a slot, its start under way): tries, and the
# pause before try n + 1 (n x this; 2.5 s in all).
CANCEL_TRIES = 5
CANCEL_RETRY_SECONDS = 0.25
_IDEMPOTENCY_NAMESPACE = uuid.UUID("5b6f3c8e-5c1e-4a7b-9a59-2f1d0c7e8a11")


def _task_id(client_id: str, idempotency_key: str | None) -> str:
    key_name = None if idempotency_key is None else client_id + "\x00" + idempotency_key
    return idempotent_id("tsk", _IDEMPOTENCY_NAMESPACE, key_name)


def _request_hash(spec: TaskCreate) -> str:
    body = spec.model_dump(mode="json", exclude={"idempotency_key"})
    if body.get("objectives") is None:  # added later: requests without it keep the hash they always had
        body.pop("objectives", None)
    return request_hash(body)


def validate_limits(spec: TaskCreate, settings: Settings) -> None:
    # The request body was checked at the edge (core.platform.json_safety); the input checked here is the one the task
    # runs with, after its template (stored by any version) was applied.
    problem = find_unsafe(spec.input) if spec.template_id is not None else None
    if problem is not None:
        raise InvalidInput(f"input.{problem}" if problem.path else f"input: {problem.message}")
    size = len(json.dumps(spec.input, separators=(",", ":")).encode())
    if size > settings.max_task_input_bytes:
        raise PayloadTooLarge(
            f"task input is {size} bytes; the limit is {settings.max_task_input_bytes} bytes "
            "(AINS_MAX_TASK_INPUT_BYTES)"
        )
    if spec.timeout_seconds > settings.max_timeout_seconds:
        raise InvalidInput(f"timeout_seconds must be at most {settings.max_timeout_seconds}")
    if spec.max_attempts > settings.max_attempts_limit:
        raise InvalidInput(f"max_attempts must be at most {settings.max_attempts_limit}")


def to_view(task: Task, settings: Settings) -> TaskView:
    return TaskView(
        id=task.id,
        type=task.type,
        status=TaskStatus(task.status),
        status_reason=task.status_reason,
        priority=task.priority,
        required_capabilities=task.required_capabilities,
        routing_strategy=Strategy(task.routing_strategy or Strategy.LEAST_LOADED),
        objectives=Objectives.model_validate(task.objectives) if task.objectives else None,
        min_trust=task.min_trust,
        exclude_agents=task.excluded_agent_ids or [],
        input=task.input,
        assigned_agent_id=task.assigned_agent_id,
        attempts=task.attempts,
        max_attempts=task.max_attempts,
        timeout_seconds=task.timeout_seconds,
        result=task.result,
        error=task.error,
        error_code=task.error_code,
        idempotency_key=task.idempotency_key,
        callback_url=task.callback_url,
        schedule_id=task.schedule_id,
        workflow_id=task.workflow_id,
        temporal_ui_url=settings.workflow_ui_link(task.workflow_id),
        created_at=as_utc(task.created_at) or utcnow(),
        updated_at=as_utc(task.updated_at) or utcnow(),
        started_at=as_utc(task.started_at),
        completed_at=as_utc(task.completed_at),
    )


def workflow_input(task: Task, settings: Settings, depends_on: list[str] | None = None) -> TaskWorkflowInput:
    strategy = task.routing_strategy or settings.default_routing_strategy
    return TaskWorkflowInput(
        policy=ExecutionPolicy(
            heartbeat_timeout_seconds=settings.agent_heartbeat_timeout_seconds,
            retry_backoff_seconds=settings.retry_backoff_seconds,
            no_agent_wait_seconds=settings.no_agent_wait_seconds,
            priority_aging_seconds=settings.priority_aging_seconds,
            dispatch_recheck_seconds=settings.dispatch_fallback_recheck_seconds,
            inline_call_max_ms=settings.inline_call_max_ms(),
        ),
        task_id=task.id,
        client_id=task.client_id,
        task_type=task.type,
        required_capabilities=task.required_capabilities,
        priority=task.priority,
        timeout_seconds=task.timeout_seconds,
        max_attempts=task.max_attempts,
        routing_strategy=strategy,
        min_trust=task.min_trust,
        excluded_agent_ids=task.excluded_agent_ids or [],
        queue_timeout_seconds=task.queue_timeout_seconds,
        retry=RetrySpec(**task.retry_policy) if task.retry_policy else None,
        depends_on=depends_on or [],
        history_version=ROUTED_CALLS,
        adaptive=tuning_for(task.objectives, settings) if strategy == Strategy.ADAPTIVE.value else None,
        agent_calls_queue=ALL_QUEUES[settings.agent_calls_queue],
    )


def unstarted_clause() -> ColumnElement[bool]:
    """Tasks whose run has taken no step: pending with no status reason (the run's first step sets one or moves
    the status on). Members of a batch or composition are their parent's to start, so they are left out."""
    return and_(Task.status == TaskStatus.PENDING.value, Task.status_reason.is_(None), Task.parent_id.is_(None))


def is_unstarted(task: Task) -> bool:
    """``unstarted_clause`` for a row already loaded."""
    return task.status == TaskStatus.PENDING.value and task.status_reason is None and task.parent_id is None


def queued_input(task: Task, settings: Settings, assignment: SlotAssignment | None = None) -> TaskWorkflowInput:
    """The input of a run started for a task queued ahead of it (core.composition.batch_queue): by its hand-over, with the
    slot as ``assignment``; without one when its queue timeout ran out (the dispatch reconciler) or to cancel it.
    Such a task has no dependencies; its queue timeout counts from its creation."""
    return workflow_input(task, settings).model_copy(
        update={"queued": True, "queued_since": as_utc(task.created_at), "assignment": assignment}
    )


@dataclass(frozen=True)
class Parent:
    """The chain or plan a task is a step of."""

    id: str
    step: str


async def owned_task_ids(session: AsyncSession, client_id: str, task_ids: list[str]) -> set[str]:
    """Which of ``task_ids`` exist and belong to the client (one query)."""
    if not task_ids:
        return set()
    rows = await session.execute(select(Task.id).where(Task.id.in_(task_ids), Task.client_id == client_id))
    return set(rows.scalars())


async def check_dependencies(session: AsyncSession, client_id: str, depends_on: list[str]) -> None:
    if not depends_on:
        return
    owned = await owned_task_ids(session, client_id, depends_on)
    unknown = [d for d in depends_on if d not in owned]
    if unknown:
        raise InvalidInput(f"depends_on names unknown task(s): {', '.join(unknown)}")


async def prepare_spec(session: AsyncSession, settings: Settings, client_id: str, spec: TaskCreate) -> TaskCreate:
    """The request with its template applied, checked against the limits in Settings."""
    spec = await resolve_template(session, client_id, spec)
    validate_limits(spec, settings)
    if spec.callback_url is not None:
        await check_url(str(spec.callback_url), UrlPolicy.from_settings(settings))
    return spec


def build_task(
    settings: Settings,
    client_id: str,
    spec: TaskCreate,
    *,
    schedule_id: str | None = None,
    parent: Parent | None = None,
    task_id: str | None = None,
) -> Task:
    """The row for a prepared request (not yet added to a session)."""
    return Task(**task_values(settings, client_id, spec, schedule_id=schedule_id, parent=parent, task_id=task_id))


def task_values(
    settings: Settings,
    client_id: str,
    spec: TaskCreate,
    *,
    schedule_id: str | None = None,
    parent: Parent | None = None,
    task_id: str | None = None,
) -> dict[str, Any]:
    """The column values of a prepared request's row: ``build_task`` without the ORM object (bulk inserts)."""
    task_id = task_id or _task_id(client_id, spec.idempotency_key)
    return {
        "id": task_id,
        "client_id": client_id,
        "type": spec.task_type,
        "input": spec.input,
        "required_capabilities": spec.effective_requirements(),
        "priority": spec.priority,
        "timeout_seconds": spec.timeout_seconds,
        "max_attempts": spec.max_attempts,
        "idempotency_key": spec.idempotency_key,
        "request_hash": _request_hash(spec),
        "callback_url": str(spec.callback_url) if spec.callback_url is not None else None,
        "schedule_id": schedule_id,
        "parent_id": parent.id if parent else None,
        "step_name": parent.step if parent else None,
        "template_id": spec.template_id,
        "routing_strategy": (spec.routing_strategy or Strategy(settings.default_routing_strategy)).value,
        "objectives": spec.objectives.model_dump() if spec.objectives else None,
        "min_trust": spec.min_trust,
        "excluded_agent_ids": list(spec.exclude_agents),
        "queue_timeout_seconds": spec.queue_timeout_seconds,
        "retry_policy": spec.retry_policy.model_dump() if spec.retry_policy else None,
        "status": TaskStatus.PENDING.value,
        "workflow_id": task_workflow_id(task_id),
    }


async def record_task(
    db: Database,
    settings: Settings,
    client_id: str,
    spec: TaskCreate,
    *,
    schedule_id: str | None = None,
    parent: Parent | None = None,
    task_id: str | None = None,
) -> tuple[Task, bool]:
    """Validate and write the task row (with its dependencies and template use) in one transaction.

    Returns the row and whether it was created now; an existing row with the same id (idempotency key,
    or a step task written again by a retried activity) is returned instead, never duplicated.
    """
    async with db.session() as session:
        spec = await prepare_spec(session, settings, client_id, spec)
    task = build_task(settings, client_id, spec, schedule_id=schedule_id, parent=parent, task_id=task_id)

    async def write(session: AsyncSession) -> Task:
        await check_dependencies(session, client_id, spec.depends_on)
        session.add(task)
        await session.flush()
        session.add_all(TaskDependency(task_id=task.id, depends_on_id=d) for d in spec.depends_on)
        if spec.template_id:
            await count_template_use(session, spec.template_id)
        return task

    async def stored(session: AsyncSession) -> Task | None:
        return await session.get(Task, task.id)

    # A step task written again by a retried activity is the same step whatever its fingerprint.
    return await create_once(
        db,
        write,
        stored,
        lambda existing: existing.request_hash == task.request_hash or parent is not None,
        key_reused(spec.idempotency_key),
    )


async def submit_task(
    db: Database,
    settings: Settings,
    client_id: str,
    spec: TaskCreate,
    start_run: StartRun,
    *,
    schedule_id: str | None = None,
) -> TaskAccepted:
    """Record the task, then have its run started by ``start_run``.

    The row is written first, so the task is accepted durably and readable at once. A start that never
    happens (the process died in between, Temporal was unreachable) is made by the dispatch reconciler, which
    starts every task still pending with no status reason; with an idempotency key, a repeat of the request
    also starts it. Starting is idempotent.
    """
    task, created = await record_task(db, settings, client_id, spec, schedule_id=schedule_id)
    try:
        await start_run(workflow_input(task, settings, spec.depends_on))
    except RPCError as exc:
        raise Unavailable(f"Temporal is unreachable, the task's run was not started yet: {exc.message}") from exc
    return accepted(task, settings, created)


def accepted(task: Task, settings: Settings, created: bool) -> TaskAccepted:
    return TaskAccepted(
        id=task.id,
        status=TaskStatus(task.status),
        workflow_id=task.workflow_id,
        temporal_ui_url=settings.workflow_ui_link(task.workflow_id),
        created=created,
    )


async def get_task(session: AsyncSession, settings: Settings, task_id: str, client_id: str | None) -> TaskView:
    """``client_id`` None means any client (admin). Another client's task is reported as not found."""
    task = owned(await session.get(Task, task_id), client_id, f"task {task_id!r}")
    view = to_view(task, settings)
    if task.status == TaskStatus.ROUTING.value:
        view.waiting = await waiting_view(session, task_id, settings.priority_aging_seconds)
    return view


TASKS = Keyset("tasks", (Task.created_at, Task.id), descending=True)


async def list_tasks(
    session: AsyncSession,
    settings: Settings,
    client_id: str | None,
    *,
    status: TaskStatus | None = None,
    task_type: str | None = None,
    agent_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[TaskView]:
    """Newest first."""
    page_size = min(limit, MAX_PAGE_SIZE)
    query = select(Task)
    if client_id is not None:
        query = query.where(Task.client_id == client_id)
    if status is not None:
        query = query.where(Task.status == status.value)
    if task_type is not None:
        query = query.where(Task.type == task_type)
    if agent_id is not None:
        query = query.where(Task.assigned_agent_id == agent_id)
    found = list((await session.execute(TASKS.page_query(query, page_size, cursor))).scalars())
    rows, next_cursor = TASKS.page(found, page_size)
    return Page[TaskView](items=[to_view(t, settings) for t in rows], next_cursor=next_cursor)


async def cancel_task(
    db: Database, temporal: Client, settings: Settings, task_id: str, client_id: str | None
) -> TaskView:
    async with db.session() as session:
        view = await get_task(session, settings, task_id, client_id)
    if view.status.is_final:
        raise Conflict(f"task {task_id!r} already finished with status {view.status.value}")
    handle = temporal.get_workflow_handle(view.workflow_id)
    for attempt in range(CANCEL_TRIES):
        try:
            await handle.cancel()
            return view
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise Unavailable(f"could not reach Temporal to cancel the task: {exc.message}") from exc
        if attempt == CANCEL_TRIES - 1:
            break
        # No run yet: a task queued ahead of its run, or just accepted, is cancelled by its run (started here to
        # be cancelled, which records the status and frees what it holds); a task just handed a slot is being started.
        if not await _start_run_to_cancel(db, temporal, settings, task_id):
            await asyncio.sleep(CANCEL_RETRY_SECONDS * (attempt + 1))
    raise Unavailable(f"task {task_id!r} has no workflow run to cancel yet; try again shortly")


async def _start_run_to_cancel(db: Database, temporal: Client, settings: Settings, task_id: str) -> bool:
    """Start the run of a task that has none yet, so that its run records the cancel: one waiting in the dispatch
    queue (core.composition.batch_queue), or one just accepted whose start has not happened (api.task_starter). False when the
    task is neither."""
    async with db.session() as session:
        task = await session.get(Task, task_id)
        if task is None:
            return False
        waits = await session.get(TaskWait, task_id)
        if waits is not None and waits.start_on_handover:
            params = queued_input(task, settings)
        elif is_unstarted(task):
            params = workflow_input(task, settings, (await dependencies_of(session, [task_id])).get(task_id))
        else:
            return False
    await start_task_workflow(temporal, params)
    return True


async def task_routing(
    session: AsyncSession, settings: Settings, task_id: str, client_id: str | None
) -> TaskRoutingView:
    """Every routing receipt of the task, one per attempt, in attempt order."""
    await get_task(session, settings, task_id, client_id)
    rows = (
        await session.execute(
            select(RoutingReceipt).where(RoutingReceipt.task_id == task_id).order_by(RoutingReceipt.attempt)
        )
    ).scalars()
    receipts = [
        RoutingReceiptView(
            attempt=r.attempt,
            strategy=Strategy(r.strategy),
            outcome=r.outcome,
            winner_agent_id=r.winner_agent_id,
            reason=r.reason,
            candidates_total=r.candidates_total,
            candidates=[CandidateView.model_validate(c) for c in r.candidates],
            duration_ms=r.duration_ms,
            created_at=as_utc(r.created_at) or utcnow(),
            updated_at=as_utc(r.updated_at) or utcnow(),
        )
        for r in rows
    ]
    return TaskRoutingView(task_id=task_id, receipts=receipts)
