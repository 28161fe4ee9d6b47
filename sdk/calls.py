"""Every API operation described once, as data: method, path, query, body and how to read the answer.

The sync and async clients (``sdk.client``) only run these descriptions; paths, parameters and wire models
live here alone. Bodies and answers are the wire models of ``models/``, the contract the API itself uses.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import Enum
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter

from ains.models.agents import AgentCreate, AgentDetailView, AgentStatus, AgentUpdate, AgentView
from ains.models.audit import AuditEntryView, AuditMethod
from ains.models.chains import ChainCreate
from ains.models.common import Page
from ains.models.feedback import FeedbackCreate, FeedbackView
from ains.models.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyView
from ains.models.llm import PlanGenerateRequest, PlanGenerateResponse
from ains.models.plans import PlanCreate, PlanView
from ains.models.providers import ProvidersView
from ains.models.schedules import (
    ScheduleBackfill,
    ScheduleCreate,
    ScheduleNote,
    ScheduleTrigger,
    ScheduleUpdate,
    ScheduleView,
)
from ains.models.tasks import (
    TaskAccepted,
    TaskBatchAccepted,
    TaskBatchCreate,
    TaskCreate,
    TaskRoutingView,
    TaskStatus,
    TaskView,
)
from ains.models.templates import TemplateCreate, TemplateView
from ains.models.trust import TrustTier
from ains.models.trust_views import AgentTrustView, Leaderboard, TrustOverride, TrustRecordView
from ains.models.usage import BudgetSet, BudgetView, UsageGroup, UsageReport
from ains.models.webhooks import DeliveryStatus, DeliveryView, WebhookCreate, WebhookCreated, WebhookView

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
Query = Sequence[tuple[str, str]]
IDEMPOTENCY_HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[bytes], T]
    params: Query = ()
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    # Safe to send again when the answer was lost (reads, deletes, submissions carrying an idempotency key).
    replayable: bool = False


def _model(model: type[M]) -> Callable[[bytes], M]:
    return model.model_validate_json


def _list(model: type[M]) -> Callable[[bytes], list[M]]:
    adapter = TypeAdapter(list[model])  # type: ignore[valid-type]
    return adapter.validate_json


def _nothing(_: bytes) -> None:
    return None


def _seg(value: str) -> str:
    return quote(value, safe="")


def _text(value: object) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def query(**values: object) -> Query:
    """Query parameters without the None ones; lists become repeated parameters."""
    params: list[tuple[str, str]] = []
    for name, value in values.items():
        if value is None:
            continue
        for item in value if isinstance(value, list | tuple) else [value]:
            params.append((name, _text(item)))
    return params


def body(model: BaseModel) -> dict[str, Any]:
    """Only the fields the caller set: a PATCH changes nothing else, and server defaults apply."""
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude_unset=True)
    return dumped


def coerce(model: type[M], value: M | Mapping[str, Any]) -> M:
    """Accept the wire model or a plain mapping (validated here, before anything is sent)."""
    return value if isinstance(value, model) else model.model_validate(value)


def new_idempotency_key() -> str:
    return f"sdk-{uuid.uuid4().hex}"


# --- tasks ---------------------------------------------------------------------------------------------------
def submit_task(spec: TaskCreate, idempotency_key: str | None = None) -> Call[TaskAccepted]:
    """One logical submission = one idempotency key, kept across the client's retries."""
    key = spec.idempotency_key or idempotency_key or new_idempotency_key()
    return Call(
        "POST",
        "/v1/tasks",
        _model(TaskAccepted),
        body={**body(spec), "idempotency_key": key},
        headers={IDEMPOTENCY_HEADER: key},
        replayable=True,
    )


def get_task(task_id: str) -> Call[TaskView]:
    return Call("GET", f"/v1/tasks/{_seg(task_id)}", _model(TaskView), replayable=True)


def list_tasks(
    *,
    status: TaskStatus | str | None = None,
    type: str | None = None,
    agent_id: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[TaskView]]:
    params = query(status=status, type=type, agent_id=agent_id, limit=limit, cursor=cursor)
    return Call("GET", "/v1/tasks", _model(Page[TaskView]), params=params, replayable=True)


def task_routing(task_id: str) -> Call[TaskRoutingView]:
    return Call("GET", f"/v1/tasks/{_seg(task_id)}/routing", _model(TaskRoutingView), replayable=True)


def cancel_task(task_id: str) -> Call[TaskView]:
    return Call("POST", f"/v1/tasks/{_seg(task_id)}/cancel", _model(TaskView), replayable=True)


def give_feedback(task_id: str, spec: FeedbackCreate) -> Call[FeedbackView]:
    """Sending the same score again only counts once (it replaces), so a retry is safe."""
    return Call("POST", f"/v1/tasks/{_seg(task_id)}/feedback", _model(FeedbackView), body=body(spec), replayable=True)


def task_events_path(task_id: str) -> str:
    return f"/v1/tasks/{_seg(task_id)}/events"


def submit_batch(batch: TaskBatchCreate, idempotency_key: str | None = None) -> Call[TaskBatchAccepted]:
    """Each item without a key gets ``<batch key>-<index>``, so a resubmitted batch creates nothing new."""
    key = idempotency_key or new_idempotency_key()
    items = [
        {**body(item), "idempotency_key": item.idempotency_key or f"{key}-{index}"}
        for index, item in enumerate(batch.tasks)
    ]
    return Call("POST", "/v1/tasks/batch", _model(TaskBatchAccepted), body={"tasks": items}, replayable=True)


# --- chains and plans -------------------------------------------------------------------------------------------
COMPOSITION_PATHS = {"chain": "/v1/task-chains", "plan": "/v1/plans"}


def create_composition(kind: str, spec: ChainCreate | PlanCreate, idempotency_key: str | None) -> Call[PlanView]:
    key = spec.idempotency_key or idempotency_key or new_idempotency_key()
    return Call(
        "POST", COMPOSITION_PATHS[kind], _model(PlanView), body={**body(spec), "idempotency_key": key}, replayable=True
    )


def get_composition(kind: str, composition_id: str) -> Call[PlanView]:
    return Call("GET", f"{COMPOSITION_PATHS[kind]}/{_seg(composition_id)}", _model(PlanView), replayable=True)


def cancel_composition(kind: str, composition_id: str) -> Call[PlanView]:
    path = f"{COMPOSITION_PATHS[kind]}/{_seg(composition_id)}/cancel"
    return Call("POST", path, _model(PlanView), replayable=True)


def generate_plan(request: PlanGenerateRequest) -> Call[PlanGenerateResponse]:
    return Call("POST", "/v1/plans/generate", _model(PlanGenerateResponse), body=body(request))


# --- templates ----------------------------------------------------------------------------------------------------
def create_template(spec: TemplateCreate) -> Call[TemplateView]:
    return Call("POST", "/v1/templates", _model(TemplateView), body=body(spec))


def get_template(template_id: str) -> Call[TemplateView]:
    return Call("GET", f"/v1/templates/{_seg(template_id)}", _model(TemplateView), replayable=True)


def list_templates() -> Call[list[TemplateView]]:
    return Call("GET", "/v1/templates", _list(TemplateView), replayable=True)


def delete_template(template_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/templates/{_seg(template_id)}", _nothing, replayable=True)


# --- schedules ----------------------------------------------------------------------------------------------------
def create_schedule(spec: ScheduleCreate) -> Call[ScheduleView]:
    return Call("POST", "/v1/schedules", _model(ScheduleView), body=body(spec))


def get_schedule(schedule_id: str) -> Call[ScheduleView]:
    return Call("GET", f"/v1/schedules/{_seg(schedule_id)}", _model(ScheduleView), replayable=True)


def list_schedules(*, limit: int | None = None, cursor: str | None = None) -> Call[Page[ScheduleView]]:
    params = query(limit=limit, cursor=cursor)
    return Call("GET", "/v1/schedules", _model(Page[ScheduleView]), params=params, replayable=True)


def update_schedule(schedule_id: str, change: ScheduleUpdate) -> Call[ScheduleView]:
    return Call("PATCH", f"/v1/schedules/{_seg(schedule_id)}", _model(ScheduleView), body=body(change))


def delete_schedule(schedule_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/schedules/{_seg(schedule_id)}", _nothing, replayable=True)


def schedule_action(schedule_id: str, action: str, payload: BaseModel | None = None) -> Call[ScheduleView]:
    """``pause``/``resume`` (ScheduleNote), ``trigger`` (ScheduleTrigger), ``backfill`` (ScheduleBackfill)."""
    path = f"/v1/schedules/{_seg(schedule_id)}/{action}"
    return Call("POST", path, _model(ScheduleView), body=None if payload is None else body(payload))


def pause_schedule(schedule_id: str, note: str | None = None) -> Call[ScheduleView]:
    return schedule_action(schedule_id, "pause", ScheduleNote(note=note) if note else None)


def resume_schedule(schedule_id: str, note: str | None = None) -> Call[ScheduleView]:
    return schedule_action(schedule_id, "resume", ScheduleNote(note=note) if note else None)


def trigger_schedule(schedule_id: str, trigger: ScheduleTrigger | None = None) -> Call[ScheduleView]:
    return schedule_action(schedule_id, "trigger", trigger)


def backfill_schedule(schedule_id: str, backfill: ScheduleBackfill) -> Call[ScheduleView]:
    return schedule_action(schedule_id, "backfill", backfill)


# --- agents and trust -----------------------------------------------------------------------------------------------
def register_agent(spec: AgentCreate) -> Call[AgentView]:
    return Call("POST", "/v1/agents", _model(AgentView), body=body(spec))


def get_agent(agent_id: str) -> Call[AgentDetailView]:
    return Call("GET", f"/v1/agents/{_seg(agent_id)}", _model(AgentDetailView), replayable=True)


def list_agents(
    *,
    tag: list[str] | None = None,
    status: AgentStatus | str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[AgentView]]:
    params = query(tag=tag, status=status, limit=limit, cursor=cursor)
    return Call("GET", "/v1/agents", _model(Page[AgentView]), params=params, replayable=True)


def update_agent(agent_id: str, change: AgentUpdate) -> Call[AgentView]:
    return Call("PATCH", f"/v1/agents/{_seg(agent_id)}", _model(AgentView), body=body(change), replayable=True)


def deregister_agent(agent_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/agents/{_seg(agent_id)}", _nothing, replayable=True)


def heartbeat(agent_id: str) -> Call[AgentView]:
    return Call("POST", f"/v1/agents/{_seg(agent_id)}/heartbeat", _model(AgentView), replayable=True)


def agent_trust(agent_id: str, *, limit: int | None = None, cursor: str | None = None) -> Call[AgentTrustView]:
    params = query(limit=limit, cursor=cursor)
    return Call("GET", f"/v1/agents/{_seg(agent_id)}/trust", _model(AgentTrustView), params=params, replayable=True)


def override_trust(agent_id: str, change: TrustOverride) -> Call[TrustRecordView]:
    return Call("POST", f"/v1/agents/{_seg(agent_id)}/trust", _model(TrustRecordView), body=body(change))


def leaderboard(
    *, limit: int | None = None, tier: TrustTier | str | None = None, tag: str | None = None
) -> Call[Leaderboard]:
    params = query(limit=limit, tier=tier, tag=tag)
    return Call("GET", "/v1/trust/leaderboard", _model(Leaderboard), params=params, replayable=True)


# --- keys ----------------------------------------------------------------------------------------------------------
def create_key(spec: ApiKeyCreate) -> Call[ApiKeyCreated]:
    return Call("POST", "/v1/keys", _model(ApiKeyCreated), body=body(spec))


def list_keys(*, client_id: str | None = None) -> Call[list[ApiKeyView]]:
    return Call("GET", "/v1/keys", _list(ApiKeyView), params=query(client_id=client_id), replayable=True)


def revoke_key(key_id: str) -> Call[ApiKeyView]:
    return Call("DELETE", f"/v1/keys/{_seg(key_id)}", _model(ApiKeyView), replayable=True)


# --- webhooks ----------------------------------------------------------------------------------------------------------
def create_webhook(spec: WebhookCreate) -> Call[WebhookCreated]:
    return Call("POST", "/v1/webhooks", _model(WebhookCreated), body=body(spec))


def get_webhook(webhook_id: str) -> Call[WebhookView]:
    return Call("GET", f"/v1/webhooks/{_seg(webhook_id)}", _model(WebhookView), replayable=True)


def list_webhooks(*, limit: int | None = None, cursor: str | None = None) -> Call[Page[WebhookView]]:
    params = query(limit=limit, cursor=cursor)
    return Call("GET", "/v1/webhooks", _model(Page[WebhookView]), params=params, replayable=True)


def delete_webhook(webhook_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/webhooks/{_seg(webhook_id)}", _nothing, replayable=True)


def list_deliveries(
    *,
    status: DeliveryStatus | str | None = None,
    webhook_id: str | None = None,
    event_type: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[DeliveryView]]:
    params = query(status=status, webhook_id=webhook_id, event_type=event_type, limit=limit, cursor=cursor)
    return Call("GET", "/v1/webhooks/deliveries", _model(Page[DeliveryView]), params=params, replayable=True)


def get_delivery(delivery_id: str) -> Call[DeliveryView]:
    return Call("GET", f"/v1/webhooks/deliveries/{_seg(delivery_id)}", _model(DeliveryView), replayable=True)


def replay_delivery(delivery_id: str) -> Call[DeliveryView]:
    return Call("POST", f"/v1/webhooks/deliveries/{_seg(delivery_id)}/replay", _model(DeliveryView))


# --- usage, budgets, providers, audit -------------------------------------------------------------------------------------
def usage(
    *,
    group_by: list[UsageGroup | str] | None = None,
    client_id: str | None = None,
    agent_id: str | None = None,
    task_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> Call[UsageReport]:
    params = query(group_by=group_by, client_id=client_id, agent_id=agent_id, task_id=task_id, since=since, until=until)
    return Call("GET", "/v1/usage", _model(UsageReport), params=params, replayable=True)


def set_budget(client_id: str, spec: BudgetSet) -> Call[BudgetView]:
    return Call("PUT", f"/v1/budgets/{_seg(client_id)}", _model(BudgetView), body=body(spec), replayable=True)


def get_budget(client_id: str) -> Call[BudgetView]:
    return Call("GET", f"/v1/budgets/{_seg(client_id)}", _model(BudgetView), replayable=True)


def delete_budget(client_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/budgets/{_seg(client_id)}", _nothing, replayable=True)


def providers() -> Call[ProvidersView]:
    return Call("GET", "/v1/providers", _model(ProvidersView), replayable=True)


def list_audit(
    *,
    client_id: str | None = None,
    key_id: str | None = None,
    method: AuditMethod | str | None = None,
    route: str | None = None,
    resource_id: str | None = None,
    status_code: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call[Page[AuditEntryView]]:
    params = query(
        client_id=client_id,
        key_id=key_id,
        method=method,
        route=route,
        resource_id=resource_id,
        status_code=status_code,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return Call("GET", "/v1/audit", _model(Page[AuditEntryView]), params=params, replayable=True)
