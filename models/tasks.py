"""Wire models for tasks."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, HttpUrl, field_validator, model_validator

from ains.models.agents import AGENT_ID_PATTERN
from ains.models.capabilities import check_requirements
from ains.models.common import StrictModel
from ains.models.feedback import Objectives
from ains.models.priority import DEFAULT_PRIORITY, MAX_PRIORITY, MIN_PRIORITY
from ains.models.routing import Strategy

TASK_TYPE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}$"


class TaskStatus(StrEnum):
    PENDING = "pending"
    ROUTING = "routing"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED, TaskStatus.TIMED_OUT})


class RetryPolicy(StrictModel):
    """Backoff between attempts: initial_interval_seconds * backoff_coefficient^(attempt-1), capped."""

    initial_interval_seconds: float = Field(strict=True, default=1.0, ge=0, le=3600)
    backoff_coefficient: float = Field(strict=True, default=2.0, ge=1, le=10)
    maximum_interval_seconds: float = Field(strict=True, default=300.0, ge=0, le=86_400)


class TaskCreate(StrictModel):
    type: str | None = Field(
        default=None,
        pattern=TASK_TYPE_PATTERN,
        description="What to do, e.g. 'summarize'. Required without a template.",
    )
    template_id: str | None = Field(
        default=None,
        max_length=64,
        description="Start from a template: its defaults apply, fields given here override them "
        "(input objects are merged key by key).",
    )
    depends_on: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Ids of earlier tasks of yours that must succeed first; the task fails with "
        "dependency_failed if one fails.",
    )
    input: dict[str, Any] = Field(default_factory=dict, description="JSON object handed to the agent.")
    required_capabilities: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="Tags the agent must offer, optionally with a version constraint: 'summarize>=2.0'. "
        "Empty means the task type itself is the required tag.",
    )
    priority: int = Field(
        strict=True, default=DEFAULT_PRIORITY, ge=MIN_PRIORITY, le=MAX_PRIORITY, description="1 lowest, 10 highest."
    )
    timeout_seconds: int = Field(strict=True, default=300, ge=1, description="Per-attempt limit for the agent call.")
    max_attempts: int = Field(strict=True, default=3, ge=1, description="Attempts across agents before the task fails.")
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Same key from the same client always maps to the same task.",
    )
    callback_url: HttpUrl | None = Field(
        default=None,
        description="Receives the task's final event (task.succeeded, ...), signed like webhooks "
        "with the deployment's callback secret.",
    )
    routing_strategy: Strategy | None = Field(default=None, description="Default from AINS_DEFAULT_ROUTING_STRATEGY.")
    objectives: Objectives | None = Field(
        default=None,
        description="What the adaptive strategy optimises: weights of quality, latency and cost "
        "(default AINS_ADAPTIVE_OBJECTIVES). Other strategies ignore it.",
    )
    min_trust: float | None = Field(
        strict=True, default=None, ge=0, le=1, description="Only agents at least this trusted."
    )
    exclude_agents: list[Annotated[str, Field(pattern=AGENT_ID_PATTERN)]] = Field(default_factory=list, max_length=100)
    queue_timeout_seconds: int | None = Field(
        strict=True,
        default=None,
        ge=1,
        le=86_400,
        description="How long to wait for a busy or unavailable capable agent before failing "
        "(default AINS_NO_AGENT_WAIT_SECONDS).",
    )
    retry_policy: RetryPolicy | None = None

    @field_validator("required_capabilities")
    @classmethod
    def _check_requirements(cls, value: list[str]) -> list[str]:
        return check_requirements(value)

    @model_validator(mode="after")
    def _type_or_template(self) -> TaskCreate:
        if self.type is None and self.template_id is None:
            raise ValueError("type is required (or give a template_id)")
        if len(set(self.depends_on)) != len(self.depends_on):
            raise ValueError("depends_on lists a task more than once")
        return self

    @property
    def task_type(self) -> str:
        if self.type is None:
            raise ValueError("the task type comes from its template; resolve the template first")
        return self.type

    def effective_requirements(self) -> list[str]:
        return self.required_capabilities or [self.task_type.lower()]


class TaskAccepted(BaseModel):
    id: str
    status: TaskStatus
    workflow_id: str
    temporal_ui_url: str
    created: bool = Field(description="False when an earlier request with the same idempotency key made it.")


class WaitingAgent(BaseModel):
    agent_id: str
    status: str
    running: int
    max_concurrency: int


class WaitingView(BaseModel):
    """Why a task waits: where it stands in the dispatch queue, who could take it, and when it may start."""

    position: int = Field(description="Tasks ahead of this one in dispatch order for the same agents (0: next).")
    waiting_total: int = Field(description="Tasks waiting for the same agents, this one included.")
    waiting_since: datetime
    capable_agents: int
    agents: list[WaitingAgent] = Field(description="The capable agents (up to 20) and how busy they are.")
    service_rate_per_second: float | None = Field(
        description="Attempts those agents finished per second over the last 5 minutes."
    )
    estimated_start_at: datetime | None = Field(
        description="Now plus (position + 1) / service rate; null while the rate is unknown."
    )


class TaskView(BaseModel):
    id: str
    type: str
    status: TaskStatus
    status_reason: str | None
    priority: int
    required_capabilities: list[str]
    routing_strategy: Strategy
    objectives: Objectives | None = None
    min_trust: float | None
    exclude_agents: list[str]
    input: dict[str, Any]
    assigned_agent_id: str | None
    attempts: int
    max_attempts: int
    timeout_seconds: int
    result: dict[str, Any] | None
    error: str | None
    error_code: str | None
    idempotency_key: str | None
    callback_url: str | None = None
    schedule_id: str | None = None
    workflow_id: str
    temporal_ui_url: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    waiting: WaitingView | None = Field(
        default=None, description="While the task waits for a free agent: its place in the dispatch queue."
    )


class CandidateView(BaseModel):
    agent_id: str
    eliminated_by: str | None
    detail: str
    trust: float
    running: int
    max_concurrency: int
    score: float | None
    adaptive: dict[str, Any] | None = Field(
        default=None,
        description="Adaptive strategy: posterior means, sampled values and objective of this candidate.",
    )


class RoutingReceiptView(BaseModel):
    attempt: int
    strategy: Strategy
    outcome: str
    winner_agent_id: str | None
    reason: str
    candidates_total: int
    candidates: list[CandidateView]
    duration_ms: float
    created_at: datetime
    updated_at: datetime


class TaskRoutingView(BaseModel):
    task_id: str
    receipts: list[RoutingReceiptView]


MAX_BATCH_SIZE = 1000


class TaskBatchCreate(StrictModel):
    tasks: list[TaskCreate] = Field(min_length=1, max_length=MAX_BATCH_SIZE)


class TaskBatchAccepted(BaseModel):
    batch_id: str
    workflow_id: str
    temporal_ui_url: str
    tasks: list[TaskAccepted]
