"""/v1/agents: the agent registry."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from ains.api.deps import Admin, AgentsRead, AgentsWrite, Cursor, State
from ains.api.json_body import SafeJSONRoute
from ains.api.read_cache import cache_key
from ains.api.state import AppState
from ains.core.access.keys import Principal
from ains.core.agents import registry as agents
from ains.core.agents import trust
from ains.core.platform.errors import Unavailable
from ains.core.webhooks.events import dispatch_pending
from ains.models.agents import AgentCreate, AgentDetailView, AgentStatus, AgentUpdate, AgentView
from ains.models.common import Page
from ains.models.trust_views import AgentTrustView, TrustOverride, TrustRecordView

router = APIRouter(prefix="/v1/agents", tags=["agents"], route_class=SafeJSONRoute)
log = logging.getLogger("ains.api")


@asynccontextmanager
async def registry_write(state: AppState) -> AsyncIterator[AsyncSession]:
    """A transaction changing agents or trust; once it has ended (committed or not), this process's cached
    registry reads are dropped, so the caller's next list or leaderboard shows the change."""
    try:
        async with state.db.transaction() as session:
            yield session
    finally:
        state.read_cache.invalidate()


@router.post("", status_code=201, response_model=AgentView)
async def register_agent(spec: AgentCreate, state: State, _: AgentsWrite) -> AgentView:
    async with registry_write(state) as session:
        view = await agents.register_agent(session, spec)
    await state.release_slots(view.id)
    return view


@router.get("", response_model=Page[AgentView])
async def list_agents(
    request: Request,
    state: State,
    _: AgentsRead,
    tag: Annotated[list[str] | None, Query(description="Only agents offering every tag given.")] = None,
    status: AgentStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=agents.MAX_PAGE_SIZE)] = 100,
    cursor: Cursor = None,
) -> Response:
    """Agents ordered by id, offering every tag given. May be up to AINS_REGISTRY_READ_CACHE_TTL_SECONDS old
    (``Cache-Control: no-cache``: fresh); writes through this API process show at once."""
    tags = tag or []

    async def read() -> bytes:
        # Serialized straight from registry rows (the JSON of Page[AgentView], byte for byte), read on a plain
        # connection: the ORM session would add nothing to a read of rows.
        async with state.db.engine.connect() as conn:
            return await agents.list_agents_json(conn, tags=tags, status=status, limit=limit, cursor=cursor)

    # The page does not depend on the caller, nor on the order or repetition of tags (all must be offered).
    params: list[tuple[str, str | int | None]] = [("tag", t) for t in sorted(set(tags))]
    params += [("status", None if status is None else status.value), ("limit", limit), ("cursor", cursor)]
    return await state.read_cache.respond(request, cache_key("/v1/agents", params), read)


@router.get("/{agent_id}", response_model=AgentDetailView)
async def get_agent(agent_id: str, state: State, _: AgentsRead) -> AgentDetailView:
    async with state.db.session() as session:
        return await agents.get_agent(session, agent_id)


async def change_agent(state: AppState, agent_id: str, spec: AgentUpdate) -> AgentView:
    """Update an agent and hand its free slots to waiting tasks (this route and the dashboard)."""
    async with registry_write(state) as session:
        view = await agents.update_agent(session, agent_id, spec)
    await state.release_slots(agent_id)
    return view


@router.patch("/{agent_id}", response_model=AgentView)
async def update_agent(agent_id: str, spec: AgentUpdate, state: State, _: AgentsWrite) -> AgentView:
    return await change_agent(state, agent_id, spec)


@router.delete("/{agent_id}", status_code=204)
async def deregister_agent(agent_id: str, state: State, _: AgentsWrite) -> Response:
    async with registry_write(state) as session:
        await agents.deregister_agent(session, agent_id)
    return Response(status_code=204)


@router.get("/{agent_id}/trust", response_model=AgentTrustView)
async def agent_trust(
    agent_id: str,
    state: State,
    _: AgentsRead,
    limit: Annotated[int, Query(ge=1, le=trust.MAX_PAGE_SIZE)] = 50,
    cursor: Cursor = None,
) -> AgentTrustView:
    async with state.db.session() as session:
        return await trust.agent_trust(session, agent_id, limit=limit, cursor=cursor)


async def dispatch_events(state: AppState) -> None:
    """Start deliveries of events the change recorded (e.g. trust.tier_changed). The change is committed
    either way: undelivered events stay pending and go out with the next dispatch."""
    try:
        await dispatch_pending(state.db, await state.temporal(), state.settings)
    except Unavailable as exc:
        log.warning("events recorded but not dispatched yet: %s", exc.message)


@router.post("/{agent_id}/heartbeat", response_model=AgentView)
async def heartbeat(agent_id: str, state: State, _: AgentsWrite) -> AgentView:
    """Agents call this periodically; one that the health check had marked unavailable becomes available."""
    async with registry_write(state) as session:
        view = await agents.record_heartbeat(session, agent_id)
    await state.release_slots(agent_id)
    return view


async def set_trust(state: AppState, agent_id: str, change: TrustOverride, principal: Principal) -> TrustRecordView:
    """An admin's trust override, audited with who made it, and its events sent (this route and the dashboard)."""
    async with registry_write(state) as session:
        record = await trust.override_trust(
            session, agent_id, change, actor=f"{principal.client_id}/{principal.key_id}"
        )
    await dispatch_events(state)
    return record


@router.post("/{agent_id}/trust", status_code=201, response_model=TrustRecordView)
async def override_trust(agent_id: str, change: TrustOverride, state: State, principal: Admin) -> TrustRecordView:
    """Set the agent's trust score by hand (admin); recorded in its trust history with the reason."""
    return await set_trust(state, agent_id, change, principal)
