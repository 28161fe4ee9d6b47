"""Wire models for webhook subscriptions, deliveries and the delivery workflow."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, HttpUrl, field_validator

from ains.models.common import StrictModel
from ains.models.events import EventType


class EventFilter(StrictModel):
    """Narrows a subscription; every field given must match (absent fields match everything)."""

    task_types: list[str] | None = Field(default=None, min_length=1, max_length=50)
    agent_ids: list[str] | None = Field(default=None, min_length=1, max_length=50)
    schedule_ids: list[str] | None = Field(default=None, min_length=1, max_length=50)

    def matches(self, data: dict[str, Any]) -> bool:
        checks = (
            (self.task_types, data.get("task_type")),
            (self.agent_ids, data.get("agent_id")),
            (self.schedule_ids, data.get("schedule_id")),
        )
        return all(allowed is None or value in allowed for allowed, value in checks)


class WebhookCreate(StrictModel):
    url: HttpUrl
    event_types: list[EventType] = Field(min_length=1, max_length=len(EventType))
    filter: EventFilter | None = None
    description: str | None = Field(default=None, max_length=500)

    @field_validator("event_types")
    @classmethod
    def _unique(cls, value: list[EventType]) -> list[EventType]:
        return sorted(set(value))


class WebhookView(BaseModel):
    id: str
    url: str
    event_types: list[EventType]
    filter: EventFilter | None
    description: str | None
    created_at: datetime


class WebhookCreated(WebhookView):
    secret: str = Field(description="Verifies X-AINS-Signature; shown only in this response.")


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DEAD = "dead"


class DeliveryAttemptView(BaseModel):
    attempt: int
    status_code: int | None
    latency_ms: float
    error: str | None
    created_at: datetime


class DeliveryView(BaseModel):
    id: str
    event_id: str
    event_type: EventType
    subscription_id: str | None
    url: str
    status: DeliveryStatus
    attempts: int
    replays: int
    last_status_code: int | None
    last_error: str | None
    payload: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    attempt_log: list[DeliveryAttemptView] = Field(default_factory=list)


# --- payloads crossing Temporal -------------------------------------------------------------------


class DeliveryPolicy(BaseModel):
    """Fixed when the delivery starts, so a replayed workflow decides exactly as it did."""

    retry_period_seconds: float = 86_400.0
    initial_backoff_seconds: float = 5.0
    max_backoff_seconds: float = 3600.0
    request_timeout_seconds: float = 10.0
    jitter_ratio: float = 0.2


class DeliveryInput(BaseModel):
    delivery_id: str
    first_attempt: int = 1
    policy: DeliveryPolicy = DeliveryPolicy()


class AttemptRequest(BaseModel):
    delivery_id: str
    attempt: int
    timeout_seconds: float


class AttemptResult(BaseModel):
    delivered: bool
    status_code: int | None = None
    latency_ms: float = 0.0
    error: str | None = None
    # True when retrying cannot help (the delivery or its URL is gone or refused).
    permanent: bool = False


class DeliveryFinish(BaseModel):
    delivery_id: str
    status: DeliveryStatus
    error: str | None = None


class DeliveryResult(BaseModel):
    delivery_id: str
    status: DeliveryStatus
    attempts: int
