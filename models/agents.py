"""Wire models for the agent registry."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, HttpUrl, field_validator, model_validator

from ains.models.capabilities import TAG_PATTERN, validate_version
from ains.models.common import StrictModel
from ains.models.feedback import LearnedTagView
from ains.models.trust import TrustTier

AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
MODEL_GROUP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
AgentKind = Literal["http", "llm"]
LLM_ENDPOINT_SCHEME = "llm://"


def kind_of_endpoint(endpoint_url: str | None) -> AgentKind:
    """llm agents are stored with endpoint ``llm://<model group>``, which no http agent can have."""
    return "llm" if endpoint_url and endpoint_url.startswith(LLM_ENDPOINT_SCHEME) else "http"


class AgentStatus(StrEnum):
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"


class Capability(StrictModel):
    tag: str = Field(pattern=TAG_PATTERN, description="Lowercase capability tag, e.g. 'summarize'.")
    version: str = Field(default="1.0", max_length=50, description="PEP 440 version of this capability.")

    @field_validator("version")
    @classmethod
    def _check_version(cls, value: str) -> str:
        return validate_version(value)


def _unique_tags(capabilities: list[Capability]) -> list[Capability]:
    tags = [c.tag for c in capabilities]
    duplicates = sorted({t for t in tags if tags.count(t) > 1})
    if duplicates:
        raise ValueError(f"capability tags must be unique; repeated: {', '.join(duplicates)}")
    return capabilities


class AgentCreate(StrictModel):
    id: str = Field(pattern=AGENT_ID_PATTERN, description="Stable agent id chosen by the registrant.")
    display_name: str = Field(min_length=1, max_length=200)
    kind: AgentKind = Field(default="http", description="'http': an endpoint; 'llm': a model group and prompt.")
    endpoint_url: HttpUrl | None = Field(default=None, description="Required for http agents.")
    model_group: str | None = Field(default=None, pattern=MODEL_GROUP_PATTERN, description="llm agents only.")
    prompt_template: str | None = Field(
        default=None,
        max_length=20_000,
        description="llm agents: Python format string over {type}, {input_json} and the input's top-level keys.",
    )
    health_url: HttpUrl | None = Field(
        default=None, description="Pinged by the scheduled health check; silent agents are marked unavailable."
    )
    capabilities: list[Capability] = Field(min_length=1, max_length=100)
    max_concurrency: int = Field(strict=True, default=1, ge=1, le=10_000)
    price_per_call_usd: float | None = Field(
        default=None, ge=0, le=1000, description="What one call costs, for adaptive routing (http agents)."
    )

    @field_validator("capabilities")
    @classmethod
    def _check_unique(cls, value: list[Capability]) -> list[Capability]:
        return _unique_tags(value)

    @model_validator(mode="after")
    def _check_kind(self) -> AgentCreate:
        if self.kind == "http" and self.endpoint_url is None:
            raise ValueError("endpoint_url is required for an http agent")
        if self.kind == "llm" and self.model_group is None:
            raise ValueError("model_group is required for an llm agent")
        if self.kind == "http" and (self.model_group is not None or self.prompt_template is not None):
            raise ValueError("model_group and prompt_template apply to llm agents only (set kind: llm)")
        return self


class AgentUpdate(StrictModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    endpoint_url: HttpUrl | None = None
    health_url: HttpUrl | None = None
    model_group: str | None = Field(default=None, pattern=MODEL_GROUP_PATTERN)
    prompt_template: str | None = Field(default=None, max_length=20_000)
    capabilities: list[Capability] | None = Field(default=None, min_length=1, max_length=100)
    max_concurrency: int | None = Field(strict=True, default=None, ge=1, le=10_000)
    price_per_call_usd: float | None = Field(default=None, ge=0, le=1000)
    status: AgentStatus | None = None

    @field_validator("capabilities")
    @classmethod
    def _check_unique(cls, value: list[Capability] | None) -> list[Capability] | None:
        return None if value is None else _unique_tags(value)


class AgentView(BaseModel):
    id: str
    display_name: str
    kind: AgentKind = "http"
    endpoint_url: str
    model_group: str | None = None
    prompt_template: str | None = None
    health_url: str | None
    capabilities: list[Capability]
    max_concurrency: int
    status: AgentStatus
    health_error: str | None
    last_heartbeat_at: datetime | None
    last_health_check_at: datetime | None
    trust_score: float
    trust_tier: TrustTier
    total_tasks: int
    successful_tasks: int
    failed_tasks: int
    timed_out_tasks: int
    success_rate: float
    avg_response_ms: float | None
    running_tasks: int
    last_assigned_at: datetime | None
    created_at: datetime
    updated_at: datetime
    price_per_call_usd: float | None = None


class AgentDetailView(AgentView):
    """GET /v1/agents/{id}: the agent as listed, plus what adaptive routing learned about it."""

    learned: list[LearnedTagView] = Field(
        default_factory=list, description="Per capability tag: posterior quality, latency and cost, evidence."
    )
