"""The agent health check activity: ping health URLs, expire stale heartbeats, update availability."""

from __future__ import annotations

import aiohttp
from temporalio import activity
from temporalio.client import Client

from ains.core.agents.health import apply_health, probe_agents
from ains.core.platform.db import Database
from ains.core.platform.errors import Unavailable
from ains.core.platform.settings import Settings
from ains.core.routing.dispatch import Dispatcher
from ains.core.webhooks.events import dispatch_pending
from ains.models.agents import AgentStatus
from ains.models.health import HealthCheckInput, HealthCheckResult


class HealthActivities:
    def __init__(self, db: Database, http: aiohttp.ClientSession, client: Client, settings: Settings) -> None:
        self._db = db
        self._http = http
        self._client = client
        self._settings = settings

    @activity.defn(name="check_agent_health")
    async def check_agent_health(self, params: HealthCheckInput) -> HealthCheckResult:
        # Probe outside the write transaction: pings can take seconds and must not hold a DB lock.
        async with self._db.session() as session:
            problems = await probe_agents(session, self._http, params.timeout_seconds, params.heartbeat_ttl_seconds)
        async with self._db.transaction() as session:
            changes = await apply_health(session, problems)
        revived = [c.agent_id for c in changes if c.status == AgentStatus.AVAILABLE.value]
        if revived:
            await Dispatcher(self._db, self._client, self._settings).release(revived, source="agent")
        if changes:
            try:  # agent.unavailable events; they stay pending if Temporal refuses now
                await dispatch_pending(self._db, self._client, self._settings)
            except Unavailable as exc:
                activity.logger.warning("agent.unavailable events not dispatched yet: %s", exc.message)
        return HealthCheckResult(checked=len(problems), changes=changes)
