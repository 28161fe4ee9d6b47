"""Agent availability from health URLs and heartbeats, applied to the registry."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.platform.outbound_http import NoConnection, Unreachable, send
from ains.core.webhooks.events import emit_agent_unavailable
from ains.models.agents import AgentStatus
from ains.models.health import AgentHealthChange
from ains.models.tables import Agent, as_utc, utcnow

MAX_PARALLEL_PINGS = 50
HEALTH_BODY_BYTES = 64 * 1024  # a health URL's answer is not read beyond this; only its status counts


async def ping(http: aiohttp.ClientSession, url: str, limit_seconds: float) -> str | None:
    """None when the URL answers 2xx in time, else what went wrong."""
    try:
        response = await send(http, "GET", url, limit_seconds=limit_seconds, max_bytes=HEALTH_BODY_BYTES)
    except TimeoutError:
        return f"health check failed: no answer within {limit_seconds:g}s"
    except (NoConnection, Unreachable) as exc:
        return f"health check failed: {exc}"
    if response.status >= 300:
        return f"health check answered HTTP {response.status}"
    return None


async def probe_agents(
    session: AsyncSession, http: aiohttp.ClientSession, limit_seconds: float, heartbeat_ttl: float
) -> dict[str, str | None]:
    """Problem (or None for healthy) per agent that has a health URL or has ever sent a heartbeat."""
    agents = list(
        await session.execute(
            select(Agent.id, Agent.health_url, Agent.last_heartbeat_at).where(
                or_(Agent.health_url.is_not(None), Agent.last_heartbeat_at.is_not(None))
            )
        )
    )
    limiter = asyncio.Semaphore(MAX_PARALLEL_PINGS)
    now = utcnow()

    async def check(health_url: str | None, last_heartbeat: datetime | None) -> str | None:
        if health_url:
            async with limiter:
                return await ping(http, health_url, limit_seconds)
        seen = as_utc(last_heartbeat)
        if heartbeat_ttl and seen is not None and now - seen > timedelta(seconds=heartbeat_ttl):
            return f"no heartbeat for {int((now - seen).total_seconds())}s"
        return None

    problems = await asyncio.gather(*(check(url, beat) for _, url, beat in agents))
    return {agent_id: problem for (agent_id, _, _), problem in zip(agents, problems, strict=True)}


async def apply_health(session: AsyncSession, problems: dict[str, str | None]) -> list[AgentHealthChange]:
    """Mark silent agents unavailable and recovered ones available again.

    Only agents the health check itself took down are brought back: an operator's manual ``unavailable``
    (health_error empty) stays as it is.
    """
    changes: list[AgentHealthChange] = []
    now = utcnow()
    for agent_id, problem in problems.items():
        agent = await session.get(Agent, agent_id)
        if agent is None:
            continue
        agent.last_health_check_at = now
        if problem and agent.status == AgentStatus.AVAILABLE.value:
            agent.status = AgentStatus.UNAVAILABLE.value
            agent.health_error = problem
            changes.append(AgentHealthChange(agent_id=agent_id, status=agent.status, reason=problem))
            await emit_agent_unavailable(session, agent_id, problem)
        elif problem:
            agent.health_error = agent.health_error and problem
        elif agent.status == AgentStatus.UNAVAILABLE.value and agent.health_error is not None:
            agent.status = AgentStatus.AVAILABLE.value
            agent.health_error = None
            changes.append(AgentHealthChange(agent_id=agent_id, status=agent.status, reason="health check passed"))
    await session.flush()
    return changes
