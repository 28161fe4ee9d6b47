"""Event types AINS emits and the envelope every webhook delivery carries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class EventType(StrEnum):
    TASK_SUCCEEDED = "task.succeeded"
    TASK_FAILED = "task.failed"
    TASK_TIMED_OUT = "task.timed_out"
    TASK_CANCELLED = "task.cancelled"
    CHAIN_COMPLETED = "chain.completed"
    PLAN_COMPLETED = "plan.completed"
    AGENT_UNAVAILABLE = "agent.unavailable"
    TRUST_TIER_CHANGED = "trust.tier_changed"


TASK_EVENT_BY_STATUS: dict[str, EventType] = {
    "succeeded": EventType.TASK_SUCCEEDED,
    "failed": EventType.TASK_FAILED,
    "timed_out": EventType.TASK_TIMED_OUT,
    "cancelled": EventType.TASK_CANCELLED,
}


class Event(BaseModel):
    """The JSON body POSTed to receivers. ``id`` is stable across retries and replays: deduplicate on it."""

    id: str
    type: EventType
    created_at: datetime
    data: dict[str, Any]


class TaskEventRequest(BaseModel):
    """Workflow -> activity: the task reached a final status; emit its event."""

    task_id: str
    status: str
