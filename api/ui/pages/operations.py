"""Schedules (pause, resume, trigger), webhooks (subscriptions, deliveries, dead letters with replay),
LLM usage per client and agent, and the audit log."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from ains.api.deps import Cursor
from ains.api.ui.session import UiUser
from ains.api.ui.web import UiRoute, action, redirect, render, require, signed_in, state_of
from ains.core.access import audit
from ains.core.llm import usage
from ains.core.platform.errors import InvalidInput
from ains.core.schedules import service as schedules
from ains.core.webhooks import service as webhooks
from ains.models.audit import AUDITED_METHODS
from ains.models.keys import Scope
from ains.models.usage import UsageGroup
from ains.models.webhooks import DeliveryStatus

router = APIRouter(route_class=UiRoute)
User = Annotated[UiUser, Depends(signed_in)]
SCHEDULE_ACTIONS = ("pause", "resume", "trigger")
USAGE_DAYS = 30


@router.get("/schedules")
async def schedules_page(request: Request, user: User) -> Response:
    require(user, Scope.TASKS_READ)
    state = state_of(request)
    page = await schedules.list_schedules(
        state.db, await state.temporal(), state.settings, user.visible_client, limit=schedules.MAX_PAGE_SIZE
    )
    return render(request, "schedules.html", user, schedules=page.items)


@router.post("/schedules/{schedule_id}/{verb}")
async def control_schedule(schedule_id: str, verb: str, request: Request, user: User) -> Response:
    form = await action(request, user)
    require(user, Scope.TASKS_WRITE)
    state = state_of(request)
    temporal = await state.temporal()
    note = form.get("note") or None
    if verb == "pause":
        await schedules.pause_schedule(state.db, temporal, state.settings, schedule_id, user.visible_client, note)
    elif verb == "resume":
        await schedules.resume_schedule(state.db, temporal, state.settings, schedule_id, user.visible_client, note)
    elif verb == "trigger":
        await schedules.trigger_schedule(state.db, temporal, state.settings, schedule_id, user.visible_client, None)
    else:
        raise InvalidInput(f"unknown schedule action {verb!r}: one of {', '.join(SCHEDULE_ACTIONS)}")
    done = {"pause": "paused", "resume": "resumed", "trigger": "triggered"}[verb]
    return redirect("/ui/schedules", f"schedule {schedule_id} {done}")


@router.get("/webhooks")
async def webhooks_page(request: Request, user: User, status: str = "") -> Response:
    require(user, Scope.TASKS_READ)
    try:
        wanted = DeliveryStatus(status) if status else None
    except ValueError as exc:
        raise InvalidInput(f"status must be one of {', '.join(s.value for s in DeliveryStatus)}") from exc
    state = state_of(request)
    async with state.db.session() as session:
        subscriptions = await webhooks.list_subscriptions(session, user.visible_client, limit=webhooks.MAX_PAGE_SIZE)
        deliveries = await webhooks.list_deliveries(session, user.visible_client, status=wanted, limit=100)
    return render(
        request,
        "webhooks.html",
        user,
        subscriptions=subscriptions.items,
        deliveries=deliveries.items,
        status=status,
        statuses=[s.value for s in DeliveryStatus],
    )


@router.post("/webhooks/deliveries/{delivery_id}/replay")
async def replay(delivery_id: str, request: Request, user: User) -> Response:
    await action(request, user)
    require(user, Scope.TASKS_WRITE)
    state = state_of(request)
    await webhooks.replay_delivery(state.db, await state.temporal(), state.settings, delivery_id, user.visible_client)
    return redirect("/ui/webhooks", f"delivery {delivery_id} replayed")


@router.get("/usage")
async def usage_page(request: Request, user: User, since: date | None = None) -> Response:
    require(user, Scope.TASKS_READ)
    start = since or (datetime.now(UTC).date() - timedelta(days=USAGE_DAYS - 1))
    reports = {}
    async with state_of(request).db.session() as session:
        for title, group in (
            ("day", UsageGroup.DAY),
            ("client", UsageGroup.CLIENT),
            ("agent", UsageGroup.AGENT),
            ("model", UsageGroup.MODEL),
        ):
            reports[title] = await usage.usage_report(
                session, group_by=[group], client_id=user.visible_client, since=start
            )
    return render(request, "usage.html", user, reports=reports, since=start)


@router.get("/audit")
async def audit_page(
    request: Request,
    user: User,
    client_id: Annotated[str, Query(max_length=64)] = "",
    method: str = "",
    resource_id: Annotated[str, Query(max_length=200)] = "",
    cursor: Cursor = None,
) -> Response:
    require(user, Scope.ADMIN)
    if method and method not in AUDITED_METHODS:
        raise InvalidInput(f"method must be one of {', '.join(sorted(AUDITED_METHODS))}")
    state = state_of(request)
    if state.audit is not None:
        await state.audit.flush()  # this replica's entries still in the write buffer
    async with state.db.session() as session:
        page = await audit.list_entries(
            session,
            client_id=client_id or None,
            method=method or None,
            resource_id=resource_id or None,
            limit=100,
            cursor=cursor,
        )
    filters = {"client_id": client_id, "method": method, "resource_id": resource_id}
    return render(request, "audit.html", user, page=page, filters=filters, methods=sorted(AUDITED_METHODS))
