"""/v1/schedules: recurring tasks on Temporal Schedules. Each client sees only its own (admins: all)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ains.api.deps import Cursor, State, TasksRead, TasksWrite, visible_client
from ains.api.json_body import SafeJSONRoute
from ains.core.schedules import service as schedules
from ains.models.common import Page
from ains.models.schedules import (
    ScheduleBackfill,
    ScheduleCreate,
    ScheduleNote,
    ScheduleTrigger,
    ScheduleUpdate,
    ScheduleView,
)

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], route_class=SafeJSONRoute)


@router.post("", status_code=201, response_model=ScheduleView)
async def create_schedule(
    spec: ScheduleCreate, state: State, principal: TasksWrite, response: Response
) -> ScheduleView:
    """Create a schedule (cron or interval) whose every run submits the target task."""
    view = await schedules.create_schedule(state.db, await state.temporal(), state.settings, principal.client_id, spec)
    response.headers["Location"] = f"/v1/schedules/{view.id}"
    return view


@router.get("", response_model=Page[ScheduleView])
async def list_schedules(
    state: State,
    principal: TasksRead,
    limit: Annotated[int, Query(ge=1, le=schedules.MAX_PAGE_SIZE)] = 20,
    cursor: Cursor = None,
) -> Page[ScheduleView]:
    return await schedules.list_schedules(
        state.db, await state.temporal(), state.settings, visible_client(principal), limit=limit, cursor=cursor
    )


@router.get("/{schedule_id}", response_model=ScheduleView)
async def get_schedule(schedule_id: str, state: State, principal: TasksRead) -> ScheduleView:
    """Next run times, recent runs with their task ids and outcome, run counts (ok, failed, skipped)."""
    return await schedules.get_schedule(
        state.db, await state.temporal(), state.settings, schedule_id, visible_client(principal)
    )


@router.patch("/{schedule_id}", response_model=ScheduleView)
async def update_schedule(
    schedule_id: str, change: ScheduleUpdate, state: State, principal: TasksWrite
) -> ScheduleView:
    return await schedules.update_schedule(
        state.db, await state.temporal(), state.settings, schedule_id, visible_client(principal), change
    )


@router.delete("/{schedule_id}", status_code=204)
async def delete_schedule(schedule_id: str, state: State, principal: TasksWrite) -> Response:
    await schedules.delete_schedule(state.db, await state.temporal(), schedule_id, visible_client(principal))
    return Response(status_code=204)


@router.post("/{schedule_id}/pause", response_model=ScheduleView)
async def pause_schedule(
    schedule_id: str, state: State, principal: TasksWrite, body: ScheduleNote | None = None
) -> ScheduleView:
    return await schedules.pause_schedule(
        state.db,
        await state.temporal(),
        state.settings,
        schedule_id,
        visible_client(principal),
        body.note if body else None,
    )


@router.post("/{schedule_id}/resume", response_model=ScheduleView)
async def resume_schedule(
    schedule_id: str, state: State, principal: TasksWrite, body: ScheduleNote | None = None
) -> ScheduleView:
    return await schedules.resume_schedule(
        state.db,
        await state.temporal(),
        state.settings,
        schedule_id,
        visible_client(principal),
        body.note if body else None,
    )


@router.post("/{schedule_id}/trigger", status_code=202, response_model=ScheduleView)
async def trigger_schedule(
    schedule_id: str, state: State, principal: TasksWrite, body: ScheduleTrigger | None = None
) -> ScheduleView:
    """Run once now (even while paused)."""
    return await schedules.trigger_schedule(
        state.db,
        await state.temporal(),
        state.settings,
        schedule_id,
        visible_client(principal),
        body.overlap if body else None,
    )


@router.post("/{schedule_id}/backfill", status_code=202, response_model=ScheduleView)
async def backfill_schedule(
    schedule_id: str, body: ScheduleBackfill, state: State, principal: TasksWrite
) -> ScheduleView:
    """Start the runs the schedule would have started between start_at and end_at."""
    return await schedules.backfill_schedule(
        state.db, await state.temporal(), state.settings, schedule_id, visible_client(principal), body
    )
