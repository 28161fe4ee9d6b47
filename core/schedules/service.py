"""Schedules on Temporal Schedules: Temporal owns timing, overlap, catch-up, pause state and history;
the ``schedules`` row owns ownership and the target. Each firing starts ``ScheduledTaskWorkflow``, which
submits an ordinary task (own id, visible in GET /v1/tasks, ``schedule_id`` set) and waits for it, so the
overlap policy applies to whole task runs.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.client import ScheduleBackfill as TemporalBackfill
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from ains.core.access.ownership import owned
from ains.core.platform.db import Database
from ains.core.platform.errors import InvalidInput, NotFound, Unavailable
from ains.core.platform.pagination import Keyset
from ains.core.platform.settings import Settings
from ains.models import search_attributes as sa
from ains.models.common import Page
from ains.models.contract import ORCHESTRATION_QUEUE, SCHEDULED_WORKFLOW_NAME
from ains.models.schedules import (
    OverlapPolicy,
    RunCounts,
    ScheduleBackfill,
    ScheduleCreate,
    ScheduledRunInput,
    ScheduleRun,
    ScheduleView,
)
from ains.models.schedules import ScheduleUpdate as ScheduleChange
from ains.models.tables import Schedule as ScheduleRow
from ains.models.tables import Task, as_utc, utcnow
from ains.models.tasks import TaskStatus

MAX_PAGE_SIZE = 100
NEXT_RUNS_SHOWN = 5
RECENT_RUNS_SHOWN = 10
_OVERLAP = {
    OverlapPolicy.SKIP: ScheduleOverlapPolicy.SKIP,
    OverlapPolicy.BUFFER_ONE: ScheduleOverlapPolicy.BUFFER_ONE,
    OverlapPolicy.BUFFER_ALL: ScheduleOverlapPolicy.BUFFER_ALL,
    OverlapPolicy.CANCEL_OTHER: ScheduleOverlapPolicy.CANCEL_OTHER,
    OverlapPolicy.ALLOW_ALL: ScheduleOverlapPolicy.ALLOW_ALL,
}
_FAILED = {TaskStatus.FAILED.value, TaskStatus.TIMED_OUT.value, TaskStatus.CANCELLED.value}


def temporal_schedule_id(schedule_id: str) -> str:
    return f"ains-{schedule_id}"


def run_workflow_id(schedule_id: str) -> str:
    """Temporal appends the scheduled time to it, one workflow id per run."""
    return f"sched-{schedule_id}"


def _new_id() -> str:
    return f"sch_{time.time_ns() // 1_000_000:013x}{uuid.uuid4().hex[:16]}"


def _temporal_schedule(schedule_id: str, client_id: str, spec: ScheduleCreate, state: ScheduleState) -> Schedule:
    task = spec.target.task
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SCHEDULED_WORKFLOW_NAME,
            ScheduledRunInput(schedule_id=schedule_id, client_id=client_id),
            id=run_workflow_id(schedule_id),
            task_queue=ORCHESTRATION_QUEUE,
            typed_search_attributes=TypedSearchAttributes(
                [SearchAttributePair(sa.CLIENT_ID, client_id), SearchAttributePair(sa.TASK_TYPE, task.type)]
            ),
            static_summary=f"scheduled {task.type} task of schedule {schedule_id}",
        ),
        spec=ScheduleSpec(
            cron_expressions=[spec.cron] if spec.cron else [],
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=spec.interval_seconds))]
            if spec.interval_seconds
            else [],
            start_at=spec.start_at,
            end_at=spec.end_at,
            jitter=timedelta(seconds=spec.jitter_seconds) if spec.jitter_seconds else None,
            time_zone_name=spec.timezone or "UTC",
        ),
        policy=SchedulePolicy(
            overlap=_OVERLAP[spec.overlap or OverlapPolicy.SKIP],
            catchup_window=timedelta(seconds=spec.catchup_window_seconds or 60),
        ),
        state=state,
    )


def _rpc_error(action: str, exc: RPCError) -> Exception:
    if exc.status == RPCStatusCode.INVALID_ARGUMENT:
        return InvalidInput(f"Temporal rejected the schedule: {exc.message}")
    if exc.status == RPCStatusCode.NOT_FOUND:
        return NotFound(f"the Temporal schedule is gone: {exc.message}")
    return Unavailable(f"could not {action}: Temporal answered {exc.message}")


def _stored_spec(spec: ScheduleCreate) -> dict[str, Any]:
    return spec.model_dump(mode="json", exclude={"paused", "note"})


async def create_schedule(
    db: Database, temporal: Client, settings: Settings, client_id: str, spec: ScheduleCreate
) -> ScheduleView:
    schedule_id = _new_id()
    async with db.transaction() as session:
        session.add(ScheduleRow(id=schedule_id, client_id=client_id, name=spec.name, spec=_stored_spec(spec)))
    state = ScheduleState(paused=spec.paused, note=spec.note)
    try:
        await temporal.create_schedule(
            temporal_schedule_id(schedule_id), _temporal_schedule(schedule_id, client_id, spec, state)
        )
    except RPCError as exc:
        async with db.transaction() as session:
            row = await session.get(ScheduleRow, schedule_id)
            if row is not None:
                await session.delete(row)
        raise _rpc_error("create the schedule", exc) from exc
    return await get_schedule(db, temporal, settings, schedule_id, client_id)


async def _row(db: Database, schedule_id: str, client_id: str | None) -> ScheduleRow:
    async with db.session() as session:
        row = await session.get(ScheduleRow, schedule_id)
    return owned(row, client_id, f"schedule {schedule_id!r}")


async def _describe(temporal: Client, schedule_id: str) -> ScheduleDescription:
    try:
        return await temporal.get_schedule_handle(temporal_schedule_id(schedule_id)).describe()
    except RPCError as exc:
        raise _rpc_error("read the schedule", exc) from exc


async def _runs(db: Database, schedule_id: str) -> tuple[list[ScheduleRun], dict[str, int]]:
    async with db.session() as session:
        recent = list(
            (
                await session.execute(
                    select(Task)
                    .where(Task.schedule_id == schedule_id)
                    .order_by(Task.created_at.desc(), Task.id.desc())
                    .limit(RECENT_RUNS_SHOWN)
                )
            ).scalars()
        )
        counts = dict(
            (
                await session.execute(
                    select(Task.status, func.count()).where(Task.schedule_id == schedule_id).group_by(Task.status)
                )
            ).all()
        )
    runs = [
        ScheduleRun(
            task_id=t.id,
            status=t.status,
            created_at=as_utc(t.created_at) or utcnow(),
            completed_at=as_utc(t.completed_at),
        )
        for t in recent
    ]
    return runs, counts


async def _view(db: Database, settings: Settings, row: ScheduleRow, described: ScheduleDescription) -> ScheduleView:
    spec = ScheduleCreate.model_validate(row.spec)
    runs, counts = await _runs(db, row.id)
    info = described.info
    return ScheduleView(
        id=row.id,
        name=row.name,
        cron=spec.cron,
        interval_seconds=spec.interval_seconds,
        timezone=spec.timezone or "UTC",
        overlap=spec.overlap or OverlapPolicy.SKIP,
        catchup_window_seconds=spec.catchup_window_seconds or 60,
        jitter_seconds=spec.jitter_seconds or 0,
        start_at=spec.start_at,
        end_at=spec.end_at,
        target=spec.target,
        paused=described.schedule.state.paused,
        note=described.schedule.state.note or None,
        # Temporal still computes the times of a paused schedule; none of them will run while it is paused.
        next_run_times=[] if described.schedule.state.paused else list(info.next_action_times[:NEXT_RUNS_SHOWN]),
        recent_runs=runs,
        run_counts=RunCounts(
            ok=counts.get(TaskStatus.SUCCEEDED.value, 0),
            failed=sum(n for status, n in counts.items() if status in _FAILED),
            skipped=info.num_actions_skipped_overlap,
            running=sum(n for status, n in counts.items() if not TaskStatus(status).is_final),
        ),
        temporal_schedule_id=temporal_schedule_id(row.id),
        temporal_ui_url=f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}"
        f"/schedules/{temporal_schedule_id(row.id)}",
        created_at=as_utc(row.created_at) or utcnow(),
        updated_at=as_utc(row.updated_at) or utcnow(),
    )


async def get_schedule(
    db: Database, temporal: Client, settings: Settings, schedule_id: str, client_id: str | None
) -> ScheduleView:
    row = await _row(db, schedule_id, client_id)
    return await _view(db, settings, row, await _describe(temporal, schedule_id))


SCHEDULES = Keyset("schedules", (ScheduleRow.id,))


async def list_schedules(
    db: Database,
    temporal: Client,
    settings: Settings,
    client_id: str | None,
    *,
    limit: int = 20,
    cursor: str | None = None,
) -> Page[ScheduleView]:
    """Oldest first."""
    page_size = min(limit, MAX_PAGE_SIZE)
    query = select(ScheduleRow)
    if client_id is not None:
        query = query.where(ScheduleRow.client_id == client_id)
    async with db.session() as session:
        rows = list((await session.execute(SCHEDULES.page_query(query, page_size, cursor))).scalars())
    page, next_cursor = SCHEDULES.page(rows, page_size)
    described = await asyncio.gather(*(_describe(temporal, r.id) for r in page))
    items = [await _view(db, settings, r, d) for r, d in zip(page, described, strict=True)]
    return Page[ScheduleView](items=items, next_cursor=next_cursor)


async def _control(
    db: Database,
    temporal: Client,
    settings: Settings,
    schedule_id: str,
    client_id: str | None,
    action: str,
    call: Callable[[ScheduleHandle], Any],
) -> ScheduleView:
    await _row(db, schedule_id, client_id)
    try:
        await call(temporal.get_schedule_handle(temporal_schedule_id(schedule_id)))
    except RPCError as exc:
        raise _rpc_error(action, exc) from exc
    return await get_schedule(db, temporal, settings, schedule_id, client_id)


async def pause_schedule(
    db: Database, temporal: Client, settings: Settings, schedule_id: str, client_id: str | None, note: str | None
) -> ScheduleView:
    return await _control(
        db, temporal, settings, schedule_id, client_id, "pause the schedule", lambda h: h.pause(note=note or "paused")
    )


async def resume_schedule(
    db: Database, temporal: Client, settings: Settings, schedule_id: str, client_id: str | None, note: str | None
) -> ScheduleView:
    return await _control(
        db,
        temporal,
        settings,
        schedule_id,
        client_id,
        "resume the schedule",
        lambda h: h.unpause(note=note or "resumed"),
    )


async def trigger_schedule(
    db: Database,
    temporal: Client,
    settings: Settings,
    schedule_id: str,
    client_id: str | None,
    overlap: OverlapPolicy | None,
) -> ScheduleView:
    policy = _OVERLAP[overlap] if overlap is not None else None
    return await _control(
        db, temporal, settings, schedule_id, client_id, "trigger the schedule", lambda h: h.trigger(overlap=policy)
    )


async def backfill_schedule(
    db: Database,
    temporal: Client,
    settings: Settings,
    schedule_id: str,
    client_id: str | None,
    backfill: ScheduleBackfill,
) -> ScheduleView:
    request = TemporalBackfill(start_at=backfill.start_at, end_at=backfill.end_at, overlap=_OVERLAP[backfill.overlap])
    return await _control(
        db, temporal, settings, schedule_id, client_id, "backfill the schedule", lambda h: h.backfill(request)
    )


def _merge(stored: dict[str, Any], change: ScheduleChange) -> ScheduleCreate:
    patch = change.model_dump(mode="json", exclude_unset=True)
    merged = {**stored, **patch}
    if patch.get("cron") is not None:
        merged["interval_seconds"] = None
    if patch.get("interval_seconds") is not None:
        merged["cron"] = None
    try:
        return ScheduleCreate.model_validate(merged)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}".lstrip(": ") for e in exc.errors())
        raise InvalidInput(f"the updated schedule is not valid: {reasons}") from None


async def update_schedule(
    db: Database,
    temporal: Client,
    settings: Settings,
    schedule_id: str,
    client_id: str | None,
    change: ScheduleChange,
) -> ScheduleView:
    row = await _row(db, schedule_id, client_id)
    spec = _merge(row.spec, change)

    def updater(current: ScheduleUpdateInput) -> ScheduleUpdate:
        state = current.description.schedule.state
        return ScheduleUpdate(schedule=_temporal_schedule(schedule_id, row.client_id, spec, state))

    try:
        await temporal.get_schedule_handle(temporal_schedule_id(schedule_id)).update(updater)
    except RPCError as exc:
        raise _rpc_error("update the schedule", exc) from exc
    async with db.transaction() as session:
        stored = await session.get(ScheduleRow, schedule_id)
        if stored is None:
            raise NotFound(f"schedule {schedule_id!r} not found")
        stored.spec = _stored_spec(spec)
        stored.name = spec.name
        stored.updated_at = utcnow()
    return await get_schedule(db, temporal, settings, schedule_id, client_id)


async def delete_schedule(db: Database, temporal: Client, schedule_id: str, client_id: str | None) -> None:
    """Stops future runs; runs already started finish, and their tasks stay readable."""
    await _row(db, schedule_id, client_id)
    try:
        await temporal.get_schedule_handle(temporal_schedule_id(schedule_id)).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise _rpc_error("delete the schedule", exc) from exc
    async with db.transaction() as session:
        row = await session.get(ScheduleRow, schedule_id)
        if row is not None:
            await session.delete(row)


def run_idempotency_key(run_workflow_id: str) -> str:
    return f"schedule-run:{run_workflow_id}"


def task_budget_seconds(settings: Settings, timeout_seconds: int, max_attempts: int) -> float:
    """Upper bound of one task's life (mirrors core.tasks.start.start_task_workflow)."""
    return max_attempts * (timeout_seconds + settings.retry_backoff_seconds * 8) + settings.no_agent_wait_seconds + 3600
