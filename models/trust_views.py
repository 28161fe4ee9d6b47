"""Wire models for trust history, overrides and the leaderboard."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from ains.models.common import StrictModel
from ains.models.trust import TrustTier


class TrustRecordView(BaseModel):
    id: int
    agent_id: str
    task_id: str | None
    attempt: int | None
    event_type: str
    score_before: float
    score_after: float
    delta: float
    reason: str
    created_at: datetime


class CapabilityTrustView(BaseModel):
    tag: str
    trust_score: float
    trust_tier: TrustTier
    total_tasks: int
    success_rate: float
    used_for_routing: bool = Field(description="True once the tag has enough samples to replace the overall score.")


class TrustTrend(BaseModel):
    direction: str = Field(description="rising, falling or stable over the window")
    change: float
    window: int = Field(description="How many most recent records the change spans.")


class AgentTrustView(BaseModel):
    agent_id: str
    trust_score: float
    trust_tier: TrustTier
    success_rate: float
    total_tasks: int
    trend: TrustTrend
    capabilities: list[CapabilityTrustView]
    records: list[TrustRecordView]
    next_cursor: str | None = None


class TrustOverride(StrictModel):
    score: float = Field(strict=True, ge=0, le=1)
    reason: str = Field(min_length=3, max_length=2000)


class LeaderboardEntry(BaseModel):
    rank: int
    agent_id: str
    display_name: str
    trust_score: float
    trust_tier: TrustTier
    success_rate: float
    total_tasks: int
    status: str
    tag_trust_score: float | None = None


class Leaderboard(BaseModel):
    tag: str | None
    tier: TrustTier | None
    entries: list[LeaderboardEntry]
