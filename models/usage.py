"""Wire models for LLM usage (tokens and cost) and per-client daily budgets."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from ains.models.common import StrictModel


class UsageGroup(StrEnum):
    DAY = "day"
    MODEL = "model"
    DEPLOYMENT = "deployment"
    PROVIDER = "provider"
    AGENT = "agent"
    CLIENT = "client"
    TASK = "task"


class UsageRow(BaseModel):
    day: date | None = None
    model_group: str | None = None
    deployment_id: str | None = None
    provider: str | None = None
    agent_id: str | None = None
    client_id: str | None = None
    task_id: str | None = None
    calls: int
    failed_calls: int
    cached_calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float


class UsageReport(BaseModel):
    group_by: list[UsageGroup]
    rows: list[UsageRow]
    total: UsageRow


class BudgetSet(StrictModel):
    daily_limit_usd: float = Field(
        strict=True, ge=0, le=1_000_000, description="Most this client may spend per UTC day."
    )


class BudgetView(BaseModel):
    client_id: str
    daily_limit_usd: float | None
    day: date
    spent_usd: float
    reserved_usd: float = Field(description="Held by calls in flight; settled with their real cost.")
    remaining_usd: float | None
    updated_at: datetime | None
