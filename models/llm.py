"""Payloads of LLM calls (task attempts on the llm queue) and of the plan generator."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ains.models.common import StrictModel
from ains.models.plans import PlanCreate, PlanProblem

DEFAULT_PROMPT_TEMPLATE = "Task type: {type}\nInput (JSON):\n{input_json}"


class LlmCallRequest(BaseModel):
    """One attempt of a task on an LLM agent; crosses Temporal, so it carries ids only."""

    task_id: str
    attempt: int
    agent_id: str
    timeout_seconds: int


class LlmUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float = 0.0


class LlmAnswer(BaseModel):
    """What one completion returned, after fallbacks: the deployment that answered and what it cost."""

    content: str
    model_group: str
    deployment_id: str
    provider: str
    model: str
    usage: LlmUsage
    latency_ms: float
    cached: bool = False

    def metadata(self) -> dict[str, Any]:
        return {
            "model_group": self.model_group,
            "deployment_id": self.deployment_id,
            "provider": self.provider,
            "model": self.model,
            "usage": self.usage.model_dump(),
            "latency_ms": self.latency_ms,
            "cached": self.cached,
        }


class PlanGenerateRequest(StrictModel):
    goal: str = Field(min_length=1, max_length=4000, description="What the plan should achieve.")
    model_group: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Model group to ask; default: the first configured group.",
    )
    name: str | None = Field(default=None, max_length=200)
    start: bool = Field(strict=True, default=False, description="Start the plan at once if it is valid.")


class PlanGenerateResponse(BaseModel):
    plan: PlanCreate
    problems: list[PlanProblem]
    valid: bool
    offered_capabilities: list[str]
    llm: dict[str, Any] = Field(description="Model group, deployment, tokens and cost of the generating call.")
    started: bool = False
    plan_id: str | None = None
    note: str | None = None
