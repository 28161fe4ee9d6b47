"""SQLAlchemy 2.0 typed tables of the registry database (the read model of every run).

Timestamps are stored as UTC. SQLite drops the zone on the way back, so readers call ``as_utc``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ains.models.trust import INITIAL_TRUST


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
        list[str]: JSON,
        list[dict[str, Any]]: JSON,
    }


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSON)
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer, default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(200))
    endpoint_url: Mapped[str] = mapped_column(String(2048))
    health_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    kind: Mapped[str] = mapped_column(String(16), default="http", server_default="http")
    model_group: Mapped[str | None] = mapped_column(String(64), default=None)
    prompt_template: Mapped[str | None] = mapped_column(Text, default=None)
    max_concurrency: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="available", index=True)
    trust_score: Mapped[float] = mapped_column(Float, default=INITIAL_TRUST, index=True)
    total_tasks: Mapped[int] = mapped_column(Integer, default=0)
    successful_tasks: Mapped[int] = mapped_column(Integer, default=0)
    failed_tasks: Mapped[int] = mapped_column(Integer, default=0)
    timed_out_tasks: Mapped[int] = mapped_column(Integer, default=0)
    avg_response_ms: Mapped[float | None] = mapped_column(Float, default=None)
    # What one call costs, for adaptive routing's cost objective (http agents; llm agents' cost is measured).
    price_per_call_usd: Mapped[float | None] = mapped_column(Float, default=None)
    last_assigned_at: Mapped[datetime | None] = mapped_column(default=None)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    last_health_check_at: Mapped[datetime | None] = mapped_column(default=None)
    health_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    # Routing snapshots refresh by reading only the agents changed since their last look.
    __table_args__ = (Index("ix_agents_updated_at", "updated_at"),)


class AgentCapability(Base):
    __tablename__ = "agent_capabilities"

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[str] = mapped_column(String(50), default="1.0")
    # Per-capability trust, moved by the same rules as the overall score for tasks requiring this tag.
    trust_score: Mapped[float] = mapped_column(Float, default=INITIAL_TRUST, server_default="0.5")
    total_tasks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    successful_tasks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    # Covering (tag, agent_id): routing's live-load query finds a tag's agents from the index alone.
    __table_args__ = (Index("ix_agent_capabilities_tag_agent", "tag", "agent_id"),)


class Task(Base):
    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(100))
    input: Mapped[dict[str, Any]] = mapped_column(JSON)
    required_capabilities: Mapped[list[str]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(Integer, default=5)
    timeout_seconds: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    request_hash: Mapped[str] = mapped_column(String(64), default="")
    routing_strategy: Mapped[str | None] = mapped_column(String(32), default=None)
    min_trust: Mapped[float | None] = mapped_column(Float, default=None)
    excluded_agent_ids: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    queue_timeout_seconds: Mapped[int | None] = mapped_column(Integer, default=None)
    retry_policy: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Adaptive routing's objective weights as the client gave them (None: AINS_ADAPTIVE_OBJECTIVES).
    objectives: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    callback_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    # Composition: the chain or plan this task is a step of, and the template it was made from.
    parent_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    step_name: Mapped[str | None] = mapped_column(String(64), default=None)
    template_id: Mapped[str | None] = mapped_column(String(64), default=None)
    schedule_id: Mapped[str | None] = mapped_column(String(64), default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    status_reason: Mapped[str | None] = mapped_column(Text, default=None)
    assigned_agent_id: Mapped[str | None] = mapped_column(String(64), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    workflow_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        UniqueConstraint("client_id", "idempotency_key", name="uq_tasks_client_idempotency"),
        Index("ix_tasks_client_created", "client_id", "created_at", "id"),
        Index("ix_tasks_status", "status"),
        Index("ix_tasks_schedule_created", "schedule_id", "created_at"),
        # The dashboard's per-minute counts over the last hour (core/overview.py), for every client at once.
        Index("ix_tasks_created_at", "created_at"),
        Index("ix_tasks_started_at", "started_at"),
        Index("ix_tasks_completed_at", "completed_at"),
    )


class TaskAttempt(Base):
    """One routed attempt. Rows with status ``running`` are an agent's live load."""

    __tablename__ = "task_attempts"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    duration_ms: Mapped[float | None] = mapped_column(Float, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # An answer too large for a workflow history, written by the call activity and moved to the task's
    # result when the attempt is recorded (the workflow only carries a flag).
    output: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Set when a releasing agent reserved this attempt for a waiting task and the task has not been told yet
    # (cleared once the assignment signal is delivered); the reconciler re-sends or releases stale ones.
    handover_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")

    __table_args__ = (
        Index("ix_task_attempts_agent_status", "agent_id", "status"),
        # Live load of every agent at once: WHERE status = 'running' GROUP BY agent_id.
        Index("ix_task_attempts_status_agent", "status", "agent_id"),
    )


class TaskWait(Base):
    """A task waiting for a free slot of a capable agent (the dispatch queue); deleted when it is assigned.

    Releasing agents hand their free slots to the best-ranked rows they can serve: higher priority class
    first (aged by its oldest task), then fair share across clients (``vtag``, weighted virtual time), then FIFO.
    """

    __tablename__ = "task_waits"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer)
    workflow_id: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer)
    # The first required tag (sorted): the index that finds the waiters an agent may serve.
    tag: Mapped[str] = mapped_column(String(100))
    requirements: Mapped[list[str]] = mapped_column(JSON)
    min_trust: Mapped[float | None] = mapped_column(Float, default=None)
    excluded_agent_ids: Mapped[list[str]] = mapped_column(JSON)
    failed_agent_ids: Mapped[list[str]] = mapped_column(JSON)
    # Epoch seconds: the task's creation (aging, FIFO) and when it started waiting for this attempt.
    created: Mapped[float] = mapped_column(Float)
    since: Mapped[float] = mapped_column(Float)
    vtag: Mapped[float] = mapped_column(Float)
    # Queued ahead of its run (TaskWorkflowInput.queued): the run does not exist yet, or (rows written before
    # migration 0011) was started delayed; its hand-over starts it with the assignment (core.routing.dispatch).
    start_on_handover: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # Epoch seconds when a task without a run has waited its queue timeout: the dispatch reconciler then starts
    # its run, which fails it unless a slot is free. None when a run keeps its own deadline.
    expires: Mapped[float | None] = mapped_column(Float, default=None)

    __table_args__ = (
        Index("ix_task_waits_tag_order", "tag", "priority", "vtag", "created"),
        Index("ix_task_waits_vtag", "vtag"),
        Index("ix_task_waits_expires", "expires"),
    )


class FairShareClock(Base):
    """Each client's latest fair-share tag (dispatch queue): new waiting tasks of the client are tagged after
    it, by one atomic upsert per task, so concurrent submissions of one client still take distinct turns."""

    __tablename__ = "fair_share_clocks"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    vtag: Mapped[float] = mapped_column(Float)


class RoutingReceipt(Base):
    """Why an attempt went where it did: every candidate, the filter that removed it, the scores, the winner.

    One row per (task, attempt); while the task waits for a free agent the row is updated in place.
    """

    __tablename__ = "routing_receipts"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    strategy: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    winner_agent_id: Mapped[str | None] = mapped_column(String(64), default=None)
    reason: Mapped[str] = mapped_column(Text)
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    candidates_total: Mapped[int] = mapped_column(Integer, default=0)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrustRecord(Base):
    """Audit of every trust change. At most one per (task, attempt): retries cannot double-count."""

    __tablename__ = "trust_records"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str | None] = mapped_column(String(64), default=None)
    attempt: Mapped[int | None] = mapped_column(Integer, default=None)
    event_type: Mapped[str] = mapped_column(String(16))
    score_before: Mapped[float] = mapped_column(Float)
    score_after: Mapped[float] = mapped_column(Float)
    delta: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("task_id", "attempt", name="uq_trust_records_task_attempt"),
        Index("ix_trust_records_agent_created", "agent_id", "created_at"),
    )


class Schedule(Base):
    """A client's schedule. Temporal (schedule id ``ains-<id>``) owns timing and state; this row owns
    ownership and the target, which each run reads when it fires (so an update applies to the next run)."""

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_schedules_client_created", "client_id", "created_at"),)


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2048))
    event_types: Mapped[list[str]] = mapped_column(JSON)
    filter: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Needed in clear to sign deliveries; shown to the client once, at creation.
    secret: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(String(500), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_webhook_subscriptions_client", "client_id"),)


class WebhookDelivery(Base):
    """One event to one receiver (a subscription or a task's callback_url), delivered by its own workflow."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(64))
    client_id: Mapped[str | None] = mapped_column(String(64), default=None)
    subscription_id: Mapped[str | None] = mapped_column(String(64), default=None)
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    replays: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    # Null until the delivery workflow was started (a transactional outbox for events written with other data).
    dispatched_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        Index("ix_webhook_deliveries_client_status", "client_id", "status", "created_at"),
        Index("ix_webhook_deliveries_undispatched", "dispatched_at"),
    )


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[str] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskDependency(Base):
    """``task_id`` may start only after ``depends_on_id`` succeeded (dependencies across submissions)."""

    __tablename__ = "task_dependencies"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    depends_on_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (Index("ix_task_dependencies_depends_on", "depends_on_id"),)


class TaskTemplate(Base):
    __tablename__ = "task_templates"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    task_type: Mapped[str] = mapped_column(String(100))
    defaults: Mapped[dict[str, Any]] = mapped_column(JSON)
    times_used: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("client_id", "name", name="uq_task_templates_client_name"),)


class Composition(Base):
    """A chain or a plan: its spec, overall status and each step's state (the read model of its workflow)."""

    __tablename__ = "compositions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    steps: Mapped[dict[str, Any]] = mapped_column(JSON)
    workflow_id: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200), default=None)
    request_hash: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        UniqueConstraint("client_id", "kind", "idempotency_key", name="uq_compositions_client_idempotency"),
        Index("ix_compositions_client_created", "client_id", "created_at"),
    )


class AuditEntry(Base):
    """One mutation under /v1 (POST/PUT/PATCH/DELETE): who, what, when, from where. Written by api/audit.py."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    client_id: Mapped[str | None] = mapped_column(String(64), default=None)
    key_id: Mapped[str | None] = mapped_column(String(36), default=None)
    method: Mapped[str] = mapped_column(String(8))
    route: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(2048))
    resource_id: Mapped[str | None] = mapped_column(String(200), default=None)
    status_code: Mapped[int] = mapped_column(Integer)
    client_ip: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(300), default=None)
    request_id: Mapped[str] = mapped_column(String(100))

    __table_args__ = (
        Index("ix_audit_log_created", "created_at"),
        Index("ix_audit_log_client", "client_id", "id"),
        Index("ix_audit_log_resource", "resource_id"),
    )


class LlmCall(Base):
    """One LLM call: its budget reservation, then (settled) the deployment that answered, tokens and cost.

    The id is ``task:<task id>:<attempt>`` for task attempts (so a retried activity finds its reservation and
    never counts twice) or ``plan:<uuid>`` for the plan generator.
    """

    __tablename__ = "llm_calls"

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str | None] = mapped_column(String(64), default=None)
    attempt: Mapped[int | None] = mapped_column(Integer, default=None)
    agent_id: Mapped[str | None] = mapped_column(String(64), default=None)
    purpose: Mapped[str] = mapped_column(String(16), default="task")
    day: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(16), default="reserved")
    model_group: Mapped[str] = mapped_column(String(64))
    deployment_id: Mapped[str | None] = mapped_column(String(64), default=None)
    provider: Mapped[str | None] = mapped_column(String(64), default=None)
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    reserved_usd: Mapped[float] = mapped_column(Float, default=0.0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    total_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached: Mapped[bool] = mapped_column(default=False)
    latency_ms: Mapped[float | None] = mapped_column(Float, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # The answer of a settled call, so a retried activity returns it instead of calling (and paying) again.
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        Index("ix_llm_calls_client_day", "client_id", "day"),
        Index("ix_llm_calls_task", "task_id"),
        Index("ix_llm_calls_agent_day", "agent_id", "day"),
    )


class ClientBudget(Base):
    """A client's daily LLM budget in USD (UTC days)."""

    __tablename__ = "client_budgets"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    daily_limit_usd: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClientSpend(Base):
    """What a client spent (settled) and holds (reserved by calls in flight) on one UTC day.

    Reservations are a single conditional UPDATE, so concurrent calls cannot overspend.
    """

    __tablename__ = "client_spend"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    spent_usd: Mapped[float] = mapped_column(Float, default=0.0)
    reserved_usd: Mapped[float] = mapped_column(Float, default=0.0)


class AdaptiveStat(Base):
    """Adaptive routing's evidence about one agent for one capability tag: discounted sums of observations
    (models.adaptive.Evidence). Written in the transaction that records an attempt, and when feedback arrives."""

    __tablename__ = "adaptive_stats"

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    observations: Mapped[int] = mapped_column(Integer, default=0)
    weight: Mapped[float] = mapped_column(Float, default=0.0)
    quality: Mapped[float] = mapped_column(Float, default=0.0)
    log_latency: Mapped[float] = mapped_column(Float, default=0.0)
    log_latency_sq: Mapped[float] = mapped_column(Float, default=0.0)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    cost_sq: Mapped[float] = mapped_column(Float, default=0.0)
    feedback_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdaptiveObservation(Base):
    """One attempt as adaptive routing saw it, per required tag: at most one per (task, attempt, tag), so a
    retried recording cannot count twice; ``seq`` numbers it within its (tag, agent) evidence, so feedback can
    replace its quality later."""

    __tablename__ = "adaptive_observations"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    quality: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))  # "outcome" (success 1, failure 0) or "feedback"
    latency_ms: Mapped[float] = mapped_column(Float)
    cost_usd: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskFeedback(Base):
    """A client's quality score for a task's result: one per (task, client), replaced when sent again."""

    __tablename__ = "task_feedback"

    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str | None] = mapped_column(String(64), default=None)
    attempt: Mapped[int | None] = mapped_column(Integer, default=None)
    score: Mapped[float] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(100), default=None)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    revisions: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
