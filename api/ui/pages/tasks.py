"""Tasks: the filterable list, submitting one, a task's timeline, attempts, routing receipt, result; cancel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from ains.api.deps import Cursor
from ains.api.routes.tasks import submit as submit_task
from ains.api.ui.session import UiUser
from ains.api.ui.web import UiRoute, action, redirect, render, require, signed_in, state_of
from ains.core import overview
from ains.core.overview import AttemptRow
from ains.core.platform.errors import InvalidInput
from ains.core.platform.json_safety import UnsafeJSON, parse_request_json
from ains.core.tasks import service as tasks
from ains.models.keys import Scope
from ains.models.tasks import TaskCreate, TaskStatus, TaskView

router = APIRouter(route_class=UiRoute)
User = Annotated[UiUser, Depends(signed_in)]
PAGE_SIZE = 50


@dataclass
class Moment:
    at: datetime
    what: str
    status: str


def timeline(task: TaskView, attempts: list[AttemptRow]) -> list[Moment]:
    """The task's life in order: submitted, each attempt given to an agent and its outcome, the final status."""
    moments = [Moment(task.created_at, "submitted", "pending")]
    for a in attempts:
        moments.append(Moment(a.started_at, f"attempt {a.attempt} routed to {a.agent_id}", "running"))
        if a.finished_at is not None:
            moments.append(Moment(a.finished_at, f"attempt {a.attempt} {a.status}", a.status))
    if task.completed_at is not None:
        moments.append(Moment(task.completed_at, f"task {task.status.value}", task.status.value))
    return sorted(moments, key=lambda m: m.at)


def _status(value: str) -> TaskStatus | None:
    if not value:
        return None
    try:
        return TaskStatus(value)
    except ValueError as exc:
        raise InvalidInput(f"status must be one of {', '.join(s.value for s in TaskStatus)}") from exc


@router.get("/tasks")
async def tasks_page(
    request: Request,
    user: User,
    status: str = "",
    type: Annotated[str, Query(max_length=100)] = "",
    agent_id: Annotated[str, Query(max_length=64)] = "",
    cursor: Cursor = None,
) -> Response:
    require(user, Scope.TASKS_READ)
    state = state_of(request)
    async with state.db.session() as session:
        page = await tasks.list_tasks(
            session,
            state.settings,
            user.visible_client,
            status=_status(status),
            task_type=type or None,
            agent_id=agent_id or None,
            limit=PAGE_SIZE,
            cursor=cursor,
        )
    filters = {"status": status, "type": type, "agent_id": agent_id}
    return render(request, "tasks.html", user, page=page, filters=filters, statuses=[s.value for s in TaskStatus])


def _spec(form: dict[str, str]) -> TaskCreate:
    # The API's one JSON rule (NaN, lone surrogates, huge integers, deep nesting are refused, naming where).
    try:
        task_input: Any = parse_request_json((form.get("input") or "{}").encode())
    except UnsafeJSON as exc:
        raise InvalidInput(f"input.{exc}") from exc
    except ValueError as exc:
        raise InvalidInput(f"input is not valid JSON: {exc}") from exc
    if not isinstance(task_input, dict):
        raise InvalidInput("input must be a JSON object")
    capabilities = [c.strip() for c in form.get("required_capabilities", "").split(",") if c.strip()]
    priority = form.get("priority") or "5"
    if not priority.isdigit():
        raise InvalidInput("priority must be a whole number from 1 to 10")
    return TaskCreate(
        type=form.get("type") or None,
        input=task_input,
        required_capabilities=capabilities,
        priority=int(priority),
    )


@router.post("/tasks")
async def submit(request: Request, user: User) -> Response:
    form = await action(request, user)
    require(user, Scope.TASKS_WRITE)
    accepted = await submit_task(state_of(request), user.client_id, _spec(form))
    return redirect(f"/ui/tasks/{accepted.id}", "task submitted")


@router.get("/tasks/{task_id}")
async def task_page(task_id: str, request: Request, user: User) -> Response:
    require(user, Scope.TASKS_READ)
    state = state_of(request)
    async with state.db.session() as session:
        task = await tasks.get_task(session, state.settings, task_id, user.visible_client)
        routing = await tasks.task_routing(session, state.settings, task_id, user.visible_client)
        attempts = await overview.task_attempts(session, task_id)
    return render(
        request,
        "task.html",
        user,
        task=task,
        receipts=sorted(routing.receipts, key=lambda r: -r.attempt),
        attempts=attempts,
        timeline=timeline(task, attempts),
        final=task.status.is_final,
    )


@router.post("/tasks/{task_id}/cancel")
async def cancel(task_id: str, request: Request, user: User) -> Response:
    await action(request, user)
    require(user, Scope.TASKS_WRITE)
    state = state_of(request)
    await tasks.cancel_task(state.db, await state.temporal(), state.settings, task_id, user.visible_client)
    return redirect(f"/ui/tasks/{task_id}", "cancellation requested")
