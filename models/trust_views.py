"""Wire models for trust history."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from models.trust import TrustTier


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


class AgentTrustView(BaseModel):
    agent_id: str
    trust_score: float
    trust_tier: TrustTier
    success_rate: float
    total_tasks: int
    records: list[TrustRecordView]
    next_cursor: str | None = None
