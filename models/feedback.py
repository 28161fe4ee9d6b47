"""Wire models of adaptive routing: a task's objective, a client's feedback on a result, what was learned."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, model_validator

from ains.models.common import StrictModel


class Objectives(StrictModel):
    """Weights of what the adaptive strategy optimises for a task (normalised to sum 1)."""

    quality: float = Field(strict=False, default=0.6, ge=0, le=1000, description="Feedback score, else success.")
    latency: float = Field(strict=False, default=0.2, ge=0, le=1000, description="1 / (1 + latency / scale).")
    cost: float = Field(strict=False, default=0.2, ge=0, le=1000, description="1 / (1 + cost / scale).")

    @model_validator(mode="after")
    def _some_weight(self) -> Objectives:
        if self.quality + self.latency + self.cost <= 0:
            raise ValueError("objectives need at least one weight above 0")
        return self


class FeedbackCreate(StrictModel):
    score: float = Field(ge=0, le=1, description="How good the result was: 0 worst, 1 best.")
    label: str | None = Field(default=None, min_length=1, max_length=100, description="e.g. 'correct', 'off-topic'.")
    comment: str | None = Field(default=None, max_length=2000)


class FeedbackView(BaseModel):
    task_id: str
    client_id: str
    agent_id: str | None = Field(description="The agent whose result was rated.")
    attempt: int | None
    score: float
    label: str | None
    comment: str | None
    revisions: int = Field(description="1 when first sent; each update adds one (the latest score counts).")
    applied: bool = Field(description="Whether the score now stands in the agent's learned quality.")
    created_at: datetime
    updated_at: datetime


class LearnedFigures(BaseModel):
    mean: float
    sd: float | None = None


class LearnedTagView(BaseModel):
    """What adaptive routing has learned about an agent for one tag (posterior means and spreads)."""

    tag: str
    observations: int = Field(description="Attempts observed for this tag.")
    evidence: float = Field(description="Their weight after discounting (recent evidence weighs more).")
    feedback: int = Field(description="Observations whose quality came from client feedback.")
    quality: LearnedFigures
    latency_ms: LearnedFigures = Field(description="Posterior median latency; sd is of its logarithm.")
    cost_usd: LearnedFigures
    updated_at: datetime | None
