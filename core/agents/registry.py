"""The agent registry: register, read, list, update, deregister."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic_core import to_json
from sqlalchemy import ScalarSelect, bindparam, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ains.core.platform.errors import Conflict, InvalidInput, NotFound
from ains.core.platform.pagination import Keyset
from ains.core.platform.settings import get_settings
from ains.core.platform.url_safety import UrlPolicy, check_url
from ains.core.routing.adaptive import learned_view
from ains.models.agents import (
    LLM_ENDPOINT_SCHEME,
    AgentCreate,
    AgentDetailView,
    AgentStatus,
    AgentUpdate,
    AgentView,
    Capability,
)
from ains.models.capabilities import TAG_PATTERN
from ains.models.common import Page
from ains.models.tables import Agent, AgentCapability, TaskAttempt, as_utc, utcnow
from ains.models.trust import success_rate, tier_of

MAX_PAGE_SIZE = 500


async def running_counts(session: AsyncSession, agent_ids: Sequence[str] | None = None) -> dict[str, int]:
    """Live load per agent (every agent with running attempts when ``agent_ids`` is None), derived from
    attempt rows so a crash can never leak a slot. One indexed GROUP BY."""
    if agent_ids is not None and not agent_ids:
        return {}
    query = select(TaskAttempt.agent_id, func.count()).where(TaskAttempt.status == "running")
    if agent_ids is not None:
        query = query.where(TaskAttempt.agent_id.in_(agent_ids))
    rows = await session.execute(query.group_by(TaskAttempt.agent_id))
    return {agent_id: count for agent_id, count in rows}


def running_count_column() -> ScalarSelect[int]:
    """``running_counts`` as a column of a query over agents (same definition: the agent's running
    attempts), so a page of agents reads its live load in the same round trip, through the same index."""
    return (
        select(func.count())
        .where(TaskAttempt.agent_id == Agent.id, TaskAttempt.status == "running")
        .correlate(Agent)
        .scalar_subquery()
    )


async def capabilities_of(session: AsyncSession, agent_ids: Sequence[str]) -> dict[str, list[Capability]]:
    result: dict[str, list[Capability]] = {agent_id: [] for agent_id in agent_ids}
    if not agent_ids:
        return result
    rows = await session.execute(
        select(AgentCapability).where(AgentCapability.agent_id.in_(agent_ids)).order_by(AgentCapability.tag)
    )
    for cap in rows.scalars():
        result[cap.agent_id].append(Capability(tag=cap.tag, version=cap.version))
    return result


def to_view(agent: Agent, capabilities: list[Capability], running: int) -> AgentView:
    return AgentView(
        id=agent.id,
        display_name=agent.display_name,
        kind="llm" if agent.kind == "llm" else "http",
        endpoint_url=agent.endpoint_url,
        model_group=agent.model_group,
        prompt_template=agent.prompt_template,
        health_url=agent.health_url,
        capabilities=capabilities,
        max_concurrency=agent.max_concurrency,
        status=AgentStatus(agent.status),
        health_error=agent.health_error,
        last_heartbeat_at=as_utc(agent.last_heartbeat_at),
        last_health_check_at=as_utc(agent.last_health_check_at),
        trust_score=agent.trust_score,
        trust_tier=tier_of(agent.trust_score),
        total_tasks=agent.total_tasks,
        successful_tasks=agent.successful_tasks,
        failed_tasks=agent.failed_tasks,
        timed_out_tasks=agent.timed_out_tasks,
        success_rate=round(success_rate(agent.successful_tasks, agent.total_tasks), 4),
        avg_response_ms=agent.avg_response_ms,
        running_tasks=running,
        last_assigned_at=as_utc(agent.last_assigned_at),
        created_at=as_utc(agent.created_at) or utcnow(),
        updated_at=as_utc(agent.updated_at) or utcnow(),
        price_per_call_usd=agent.price_per_call_usd,
    )


async def _views(session: AsyncSession, agents: Sequence[Agent]) -> list[AgentView]:
    ids = [a.id for a in agents]
    caps = await capabilities_of(session, ids)
    running = await running_counts(session, ids)
    return [to_view(a, caps[a.id], running.get(a.id, 0)) for a in agents]


async def register_agent(session: AsyncSession, spec: AgentCreate, url_policy: UrlPolicy | None = None) -> AgentView:
    if spec.endpoint_url is not None:
        await check_url(str(spec.endpoint_url), url_policy or UrlPolicy.from_settings(get_settings()))
    if await session.get(Agent, spec.id) is not None:
        raise Conflict(f"agent {spec.id!r} is already registered; use PATCH /v1/agents/{spec.id} to change it")
    agent = Agent(
        id=spec.id,
        display_name=spec.display_name,
        # An llm agent has no endpoint; the column names its model group instead.
        endpoint_url=str(spec.endpoint_url) if spec.endpoint_url else f"{LLM_ENDPOINT_SCHEME}{spec.model_group}",
        kind=spec.kind,
        model_group=spec.model_group,
        prompt_template=spec.prompt_template,
        health_url=str(spec.health_url) if spec.health_url else None,
        max_concurrency=spec.max_concurrency,
        price_per_call_usd=spec.price_per_call_usd,
        status=AgentStatus.AVAILABLE.value,
    )
    session.add(agent)
    session.add_all(AgentCapability(agent_id=spec.id, tag=c.tag, version=c.version) for c in spec.capabilities)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent registration of the same id won the race
        raise Conflict(f"agent {spec.id!r} is already registered") from exc
    return (await _views(session, [agent]))[0]


async def get_agent(session: AsyncSession, agent_id: str) -> AgentDetailView:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id!r} not found")
    view = (await _views(session, [agent]))[0]
    return AgentDetailView(**dict(view), learned=await learned_view(session, agent))


# The columns of an agent's view, read as plain rows when listing (no ORM identity map, no re-validation).
_VIEW_COLUMNS = tuple(
    Agent.__table__.c[name]
    for name in (
        "id",
        "display_name",
        "kind",
        "endpoint_url",
        "model_group",
        "prompt_template",
        "health_url",
        "max_concurrency",
        "status",
        "health_error",
        "last_heartbeat_at",
        "last_health_check_at",
        "trust_score",
        "total_tasks",
        "successful_tasks",
        "failed_tasks",
        "timed_out_tasks",
        "avg_response_ms",
        "last_assigned_at",
        "created_at",
        "updated_at",
        "price_per_call_usd",
    )
)


def _view_dict(row: Sequence[Any], capabilities: list[dict[str, str]]) -> dict[str, Any]:
    """The fields of ``to_view`` from a row of ``_VIEW_COLUMNS`` plus the running count, in AgentView's
    order, ready for JSON."""
    (
        agent_id,
        display_name,
        kind,
        endpoint_url,
        model_group,
        prompt_template,
        health_url,
        max_concurrency,
        status,
        health_error,
        last_heartbeat_at,
        last_health_check_at,
        trust_score,
        total_tasks,
        successful_tasks,
        failed_tasks,
        timed_out_tasks,
        avg_response_ms,
        last_assigned_at,
        created_at,
        updated_at,
        price,
        running,
    ) = row  # positional: attribute access on a Row costs more than building the whole dict
    return {
        "id": agent_id,
        "display_name": display_name,
        "kind": "llm" if kind == "llm" else "http",
        "endpoint_url": endpoint_url,
        "model_group": model_group,
        "prompt_template": prompt_template,
        "health_url": health_url,
        "capabilities": capabilities,
        "max_concurrency": max_concurrency,
        "status": AgentStatus(status).value,
        "health_error": health_error,
        "last_heartbeat_at": as_utc(last_heartbeat_at),
        "last_health_check_at": as_utc(last_health_check_at),
        "trust_score": trust_score,
        "trust_tier": tier_of(trust_score).value,
        "total_tasks": total_tasks,
        "successful_tasks": successful_tasks,
        "failed_tasks": failed_tasks,
        "timed_out_tasks": timed_out_tasks,
        "success_rate": round(success_rate(successful_tasks, total_tasks), 4),
        "avg_response_ms": avg_response_ms,
        "running_tasks": running,
        "last_assigned_at": as_utc(last_assigned_at),
        "created_at": as_utc(created_at) or utcnow(),
        "updated_at": as_utc(updated_at) or utcnow(),
        "price_per_call_usd": price,
    }


AGENTS = Keyset("agents", (Agent.id,))

# The statements of the common pages, built once (building a select costs about as much as running it):
# every page orders by id and reads the page size plus one to know whether another page follows.
_PAGE = select(*_VIEW_COLUMNS, running_count_column()).order_by(Agent.id).limit(bindparam("limit"))
_PAGES = {
    (False, False): _PAGE,
    (True, False): _PAGE.where(Agent.status == bindparam("status")),
    (False, True): _PAGE.where(AGENTS.after((bindparam("cursor"),))),
    (True, True): _PAGE.where(Agent.status == bindparam("status"), AGENTS.after((bindparam("cursor"),))),
}
_PAGE_CAPABILITIES = (
    select(AgentCapability.agent_id, AgentCapability.tag, AgentCapability.version)
    .where(AgentCapability.agent_id.in_(bindparam("ids", expanding=True)))
    .order_by(AgentCapability.tag)
)


async def list_agents_json(
    db: AsyncSession | AsyncConnection,
    *,
    tags: Sequence[str] = (),
    status: AgentStatus | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> bytes:
    """One page of agents as the JSON of ``Page[AgentView]``, ordered by id; ``tags`` must all be offered.
    ``db`` is a session or a plain connection.

    The registry only holds validated values, so rows go straight to JSON (pydantic-core's serializer,
    the same one FastAPI uses) instead of through a validated model per agent: two indexed queries (the
    page with each agent's live load, then the page's capabilities) and one serialization.
    """
    for tag in tags:
        if not re.match(TAG_PATTERN, tag):
            raise InvalidInput(f"tag {tag!r} is not a valid capability tag (lowercase letters, digits, _ . -)")
    page_size = min(limit, MAX_PAGE_SIZE)
    query = _PAGES[status is not None, bool(cursor)]
    for tag in tags:
        query = query.where(Agent.id.in_(select(AgentCapability.agent_id).where(AgentCapability.tag == tag)))
    params: dict[str, Any] = {"limit": page_size + 1}
    if status is not None:
        params["status"] = status.value
    if cursor:
        (params["cursor"],) = AGENTS.decode(cursor)
    rows, next_cursor = AGENTS.page((await db.execute(query, params)).all(), page_size)
    caps: dict[str, list[dict[str, str]]] = {row[0]: [] for row in rows}
    if caps:
        for agent_id, tag, version in await db.execute(_PAGE_CAPABILITIES, {"ids": list(caps)}):
            caps[agent_id].append({"tag": tag, "version": version})
    items = [_view_dict(row, caps[row[0]]) for row in rows]
    return to_json({"items": items, "next_cursor": next_cursor})


async def list_agents(
    session: AsyncSession,
    *,
    tags: Sequence[str] = (),
    status: AgentStatus | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[AgentView]:
    """``list_agents_json`` as models."""
    page = await list_agents_json(session, tags=tags, status=status, limit=limit, cursor=cursor)
    return Page[AgentView].model_validate_json(page)


async def update_agent(
    session: AsyncSession, agent_id: str, spec: AgentUpdate, url_policy: UrlPolicy | None = None
) -> AgentView:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id!r} not found")
    if spec.endpoint_url is not None:
        await check_url(str(spec.endpoint_url), url_policy or UrlPolicy.from_settings(get_settings()))
    if spec.display_name is not None:
        agent.display_name = spec.display_name
    if spec.endpoint_url is not None:
        agent.endpoint_url = str(spec.endpoint_url)
    if spec.health_url is not None:
        agent.health_url = str(spec.health_url)
    if (spec.model_group is not None or spec.prompt_template is not None) and agent.kind != "llm":
        raise InvalidInput("model_group and prompt_template apply to llm agents only")
    if spec.model_group is not None:
        agent.model_group = spec.model_group
        agent.endpoint_url = f"{LLM_ENDPOINT_SCHEME}{spec.model_group}"
    if spec.prompt_template is not None:
        agent.prompt_template = spec.prompt_template
    if spec.max_concurrency is not None:
        agent.max_concurrency = spec.max_concurrency
    if spec.price_per_call_usd is not None:
        agent.price_per_call_usd = spec.price_per_call_usd
    if spec.status is not None:
        agent.status = spec.status.value
        agent.health_error = None
    if spec.capabilities is not None:
        await session.execute(delete(AgentCapability).where(AgentCapability.agent_id == agent_id))
        session.add_all(AgentCapability(agent_id=agent_id, tag=c.tag, version=c.version) for c in spec.capabilities)
    agent.updated_at = utcnow()
    await session.flush()
    return (await _views(session, [agent]))[0]


async def deregister_agent(session: AsyncSession, agent_id: str) -> None:
    """Removes the agent from routing. Its trust records and past attempts stay for the audit trail."""
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id!r} not found")
    await session.execute(delete(AgentCapability).where(AgentCapability.agent_id == agent_id))
    await session.delete(agent)
    await session.flush()


async def upsert_agent(session: AsyncSession, spec: AgentCreate) -> AgentView:
    """Register or refresh an agent (used by `ains up` for the demo agent)."""
    if await session.get(Agent, spec.id) is None:
        return await register_agent(session, spec)
    update = AgentUpdate(
        display_name=spec.display_name,
        endpoint_url=spec.endpoint_url,
        health_url=spec.health_url,
        capabilities=spec.capabilities,
        max_concurrency=spec.max_concurrency,
        status=AgentStatus.AVAILABLE,
    )
    return await update_agent(session, spec.id, update)


async def record_heartbeat(session: AsyncSession, agent_id: str) -> AgentView:
    """An agent says it is alive: it becomes available again unless an operator disabled it by hand."""
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id!r} not found")
    agent.last_heartbeat_at = utcnow()
    if agent.status == AgentStatus.UNAVAILABLE.value and agent.health_error is not None:
        agent.status = AgentStatus.AVAILABLE.value
        agent.health_error = None
    await session.flush()
    return (await _views(session, [agent]))[0]
