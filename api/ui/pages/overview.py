"""Overview: throughput per minute by status, success rate, the queue, capacity per capability, LLM cost today."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from ains.api.ui.session import UiUser
from ains.api.ui.web import UiRoute, render, signed_in, state_of
from ains.core import overview
from ains.core.llm import usage
from ains.models.keys import Scope

router = APIRouter(route_class=UiRoute)
User = Annotated[UiUser, Depends(signed_in)]


async def figures(request: Request, user: UiUser) -> dict[str, Any]:
    """What the overview shows, for this user: their own tasks (admins: all), the registry if they may read it."""
    state = state_of(request)
    data: dict[str, Any] = {"generated_at": datetime.now(UTC).isoformat()}
    async with state.db.session() as session:
        if user.principal.has(Scope.TASKS_READ):
            rate = await overview.throughput(session, user.visible_client)
            queue = await overview.queue(session, user.visible_client)
            today = datetime.now(UTC).date()
            cost = await usage.usage_report(
                session, group_by=[], client_id=user.visible_client, since=today, until=today
            )
            oldest = queue.oldest_created_at
            data |= {
                "throughput": {
                    "minutes": rate.minutes,
                    "submitted": rate.submitted,
                    "finished": rate.finished,
                    "waiting": rate.waiting,
                },
                "success_rate": rate.success_rate,
                "finished_last_hour": sum(sum(v) for v in rate.finished.values()),
                "queue": {
                    "depth": queue.depth,
                    "pending": queue.pending,
                    "routing": queue.routing,
                    "oldest_wait_seconds": None
                    if oldest is None
                    else max(0.0, (datetime.now(UTC) - oldest).total_seconds()),
                },
                "llm_cost_today_usd": cost.total.cost_usd,
                "llm_calls_today": cost.total.calls,
            }
        if user.principal.has(Scope.AGENTS_READ):
            loads = await overview.capacity_by_capability(session)
            data["capacity"] = [
                {
                    "tag": c.tag,
                    "running": c.running,
                    "capacity": c.capacity,
                    "agents": c.agents,
                    "available_agents": c.available_agents,
                }
                for c in loads
            ]
    return data


@router.get("")
async def overview_page(request: Request, user: User) -> Response:
    return render(request, "overview.html", user, data=await figures(request, user))


@router.get("/overview.json")
async def overview_json(request: Request, user: User) -> Response:
    return JSONResponse(await figures(request, user), headers={"Cache-Control": "no-store"})
