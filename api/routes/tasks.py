"""/v1/tasks: submit, read, list, cancel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.sse import EventSourceResponse, format_sse_event

from ains.api.deps import Cursor, State, TasksRead, TasksWrite, visible_client
from ains.api.json_body import SafeJSONRoute
from ains.api.metrics import TASKS_CREATED
from ains.api.state import AppState
from ains.core.composition import batches
from ains.core.routing import adaptive
from ains.core.tasks import service as tasks
from ains.core.tasks.events import watch_task
from ains.models.common import Page
from ains.models.feedback import FeedbackCreate, FeedbackView
from ains.models.tasks import (
    TaskAccepted,
    TaskBatchAccepted,
    TaskBatchCreate,
    TaskCreate,
    TaskRoutingView,
    TaskStatus,
    TaskView,
)

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], route_class=SafeJSONRoute)


@router.post("", status_code=202, response_model=TaskAccepted)
async def submit_task(
    spec: TaskCreate,
    state: State,
    principal: TasksWrite,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> TaskAccepted:
    """Accept a task (committed before the answer) and start its workflow. ``Idempotency-Key`` (header or body)
    makes retries safe."""
    if idempotency_key and not spec.idempotency_key:
        spec = spec.model_copy(update={"idempotency_key": idempotency_key})
    accepted = await submit(state, principal.client_id, spec)
    response.headers["Location"] = f"/v1/tasks/{accepted.id}"
    return accepted


async def submit(state: AppState, client_id: str, spec: TaskCreate) -> TaskAccepted:
    """Record the task, hand its run's start to the background starter and count it (this route and the
    dashboard): the answer does not wait for Temporal (api.task_starter)."""
    start_run = partial(state.starter.start, await state.temporal())
    accepted = await tasks.submit_task(state.db, state.settings, client_id, spec, start_run)
    if accepted.created:
        TASKS_CREATED.labels(type=spec.type or "template").inc()
    return accepted


@router.post("/batch", status_code=202, response_model=TaskBatchAccepted)
async def submit_batch(batch: TaskBatchCreate, state: State, principal: TasksWrite) -> TaskBatchAccepted:
    """Up to 1,000 tasks, all or nothing: every item is validated first; problems are listed per item (422)."""
    result = await batches.submit_batch(state.db, await state.temporal(), state.settings, principal.client_id, batch)
    created = sum(1 for item in result.tasks if item.created)
    if created:
        TASKS_CREATED.labels(type="batch").inc(created)
    return result


@router.get("", response_model=Page[TaskView])
async def list_tasks(
    state: State,
    principal: TasksRead,
    status: TaskStatus | None = None,
    type: Annotated[str | None, Query(max_length=100)] = None,
    agent_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=tasks.MAX_PAGE_SIZE)] = 50,
    cursor: Cursor = None,
) -> Page[TaskView]:
    async with state.db.session() as session:
        return await tasks.list_tasks(
            session,
            state.settings,
            visible_client(principal),
            status=status,
            task_type=type,
            agent_id=agent_id,
            limit=limit,
            cursor=cursor,
        )


@router.get("/{task_id}", response_model=TaskView)
async def get_task(task_id: str, state: State, principal: TasksRead) -> TaskView:
    async with state.db.session() as session:
        return await tasks.get_task(session, state.settings, task_id, visible_client(principal))


@router.get(
    "/{task_id}/events",
    responses={
        200: {
            "description": "`event: status` with the task (TaskView JSON) at each change",
            "content": {"text/event-stream": {}},
        }
    },
)
async def task_events(
    task_id: str,
    state: State,
    principal: TasksRead,
    timeout_seconds: Annotated[
        float | None, Query(gt=0, le=86_400, description="End the stream after this long even if not final.")
    ] = None,
) -> EventSourceResponse:
    """Server-sent events: the task now, then at every change of status, reason, agent or attempt; the stream
    ends after the final status (or ``timeout_seconds``). Keep-alive comments during long quiet periods."""
    views = watch_task(state.db, state.settings, task_id, visible_client(principal), timeout_seconds)
    first = await anext(views)  # a 404 is answered before the stream starts

    async def stream() -> AsyncIterator[bytes]:
        sequence = 0
        view: TaskView | None = first
        try:
            while True:
                if view is None:
                    yield format_sse_event(comment="keep-alive")
                else:
                    sequence += 1
                    yield format_sse_event(data_str=view.model_dump_json(), event="status", id=str(sequence))
                try:
                    view = await anext(views)
                except StopAsyncIteration:
                    return
        finally:
            await views.aclose()  # the client went away: stop polling

    return EventSourceResponse(stream(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/{task_id}/routing", response_model=TaskRoutingView)
async def task_routing(task_id: str, state: State, principal: TasksRead) -> TaskRoutingView:
    """Routing receipts, one per attempt: candidates, the filter that removed each, scores, the winner."""
    async with state.db.session() as session:
        return await tasks.task_routing(session, state.settings, task_id, visible_client(principal))


@router.post("/{task_id}/cancel", status_code=202, response_model=TaskView)
async def cancel_task(task_id: str, state: State, principal: TasksWrite) -> TaskView:
    """Request cancellation; the task reaches ``cancelled`` once its workflow has stopped the running attempt."""
    return await tasks.cancel_task(state.db, await state.temporal(), state.settings, task_id, visible_client(principal))


@router.post("/{task_id}/feedback", status_code=201, response_model=FeedbackView)
async def give_feedback(
    task_id: str, spec: FeedbackCreate, state: State, principal: TasksWrite, response: Response
) -> FeedbackView:
    """Rate a succeeded task's result (score 0-1): 201 the first time, 200 when it replaces your earlier score.

    The score stands in for the plain success in what adaptive routing learned about the agent that produced
    the result (an update replaces it, never adds); trust is not touched. A task that has not succeeded is 409.
    """
    async with state.db.transaction() as session:
        view, created = await adaptive.give_feedback(
            session, task_id, principal.client_id, visible_client(principal), spec
        )
    if not created:
        response.status_code = 200
    return view


@router.get("/{task_id}/feedback", response_model=FeedbackView)
async def get_feedback(task_id: str, state: State, principal: TasksRead) -> FeedbackView:
    """Your feedback on the task, as last sent."""
    async with state.db.session() as session:
        return await adaptive.get_feedback(session, task_id, principal.client_id, visible_client(principal))
