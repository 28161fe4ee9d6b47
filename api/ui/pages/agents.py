"""Agents: the registry with live load, one agent's trust history and attempts, operator actions; the
leaderboard."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import ValidationError

from ains.api.routes.agents import change_agent, set_trust
from ains.api.ui.session import UiUser
from ains.api.ui.web import UiRoute, action, redirect, render, require, signed_in, state_of
from ains.core import overview
from ains.core.agents import registry as agents
from ains.core.agents import trust
from ains.core.platform.errors import InvalidInput
from ains.models.agents import AgentStatus, AgentUpdate
from ains.models.capabilities import TAG_PATTERN
from ains.models.keys import Scope
from ains.models.trust import TrustTier
from ains.models.trust_views import TrustOverride

router = APIRouter(route_class=UiRoute)
User = Annotated[UiUser, Depends(signed_in)]
TRUST_POINTS = 200


@router.get("/agents")
async def agents_page(request: Request, user: User) -> Response:
    require(user, Scope.AGENTS_READ)
    async with state_of(request).db.session() as session:
        page = await agents.list_agents(session, limit=agents.MAX_PAGE_SIZE)
    return render(request, "agents.html", user, agents=page.items, more=page.next_cursor is not None)


@router.get("/agents/{agent_id}")
async def agent_page(agent_id: str, request: Request, user: User) -> Response:
    require(user, Scope.AGENTS_READ)
    async with state_of(request).db.session() as session:
        agent = await agents.get_agent(session, agent_id)
        history = await trust.agent_trust(session, agent_id, limit=TRUST_POINTS)
        attempts = await overview.agent_attempts(session, agent_id, user.visible_client)
    points = [
        {
            "t": r.created_at.isoformat(),
            "score": r.score_after,
            "delta": r.delta,
            "event": r.event_type,
            "reason": r.reason,
            "task": r.task_id,
        }
        for r in reversed(history.records)
    ]
    return render(
        request,
        "agent.html",
        user,
        agent=agent,
        trust=history,
        points=points,
        attempts=attempts,
        tiers=[t.value for t in TrustTier],
    )


@router.post("/agents/{agent_id}/status")
async def set_status(agent_id: str, request: Request, user: User) -> Response:
    form = await action(request, user)
    require(user, Scope.AGENTS_WRITE)
    try:
        status = AgentStatus(form.get("status", ""))
    except ValueError as exc:
        raise InvalidInput(f"status must be one of {', '.join(s.value for s in AgentStatus)}") from exc
    await change_agent(state_of(request), agent_id, AgentUpdate(status=status))
    return redirect(f"/ui/agents/{agent_id}", f"{agent_id} marked {status.value}")


@router.post("/agents/{agent_id}/trust")
async def override(agent_id: str, request: Request, user: User) -> Response:
    form = await action(request, user)
    require(user, Scope.ADMIN)
    try:
        score = float(form.get("score", ""))
    except ValueError as exc:
        raise InvalidInput("score: a number from 0 to 1") from exc
    try:
        change = TrustOverride(score=score, reason=form.get("reason", ""))
    except ValidationError as exc:
        raise HTTPException(422, "; ".join(f"{e['loc'][0]}: {e['msg']}" for e in exc.errors())) from exc
    record = await set_trust(state_of(request), agent_id, change, user.principal)
    return redirect(f"/ui/agents/{agent_id}", f"trust set to {record.score_after:.3f}")


@router.get("/leaderboard")
async def leaderboard_page(request: Request, user: User, tag: str = "", tier: str = "") -> Response:
    require(user, Scope.AGENTS_READ)
    if tag and not re.fullmatch(TAG_PATTERN, tag):
        raise InvalidInput(f"tag {tag!r} is not a capability tag")
    try:
        chosen = TrustTier(tier) if tier else None
    except ValueError as exc:
        raise InvalidInput(f"tier must be one of {', '.join(t.value for t in TrustTier)}") from exc
    async with state_of(request).db.session() as session:
        board = await trust.leaderboard(session, limit=trust.MAX_PAGE_SIZE, tier=chosen, tag=tag or None)
    return render(
        request, "leaderboard.html", user, board=board, tag=tag, tier=tier, tiers=[t.value for t in TrustTier]
    )
