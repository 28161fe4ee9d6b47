"""Payloads of the scheduled agent health check."""

from __future__ import annotations

from pydantic import BaseModel


class HealthCheckInput(BaseModel):
    timeout_seconds: float = 3.0
    heartbeat_ttl_seconds: float = 90.0


class AgentHealthChange(BaseModel):
    agent_id: str
    status: str
    reason: str


class HealthCheckResult(BaseModel):
    checked: int
    changes: list[AgentHealthChange]
