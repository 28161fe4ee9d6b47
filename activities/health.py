"""The agent health check activity: ping health URLs, expire stale heartbeats, update availability."""

from __future__ import annotations

import httpx
from temporalio import activity

from core.db import Database
from core.health import apply_health, probe_agents
from models.health import HealthCheckInput, HealthCheckResult


class HealthActivities:
    def __init__(self, db: Database, http: httpx.AsyncClient) -> None:
        self._db = db
        self._http = http

    @activity.defn(name="check_agent_health")
    async def check_agent_health(self, params: HealthCheckInput) -> HealthCheckResult:
        # Probe outside the write transaction: pings can take seconds and must not hold a DB lock.
        async with self._db.session() as session:
            problems = await probe_agents(session, self._http, params.timeout_seconds, params.heartbeat_ttl_seconds)
        async with self._db.transaction() as session:
            changes = await apply_health(session, problems)
        return HealthCheckResult(checked=len(problems), changes=changes)
