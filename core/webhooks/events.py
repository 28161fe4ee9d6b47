"""Emitting events: one delivery row per matching receiver, then one delivery workflow per row.

Deliveries are written in the caller's transaction with ``dispatched_at`` empty (a transactional outbox),
and ``dispatch_pending`` starts their workflows after the commit. Event and delivery ids are derived from
what happened, so emitting the same event twice (a retried activity) creates nothing new.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from ains.core.platform.db import Database
from ains.core.platform.errors import Unavailable
from ains.core.platform.settings import Settings
from ains.models import search_attributes as sa
from ains.models.contract import WEBHOOK_WORKFLOW_NAME, WEBHOOKS_QUEUE
from ains.models.events import TASK_EVENT_BY_STATUS, Event, EventType
from ains.models.tables import Task, WebhookDelivery, WebhookSubscription, as_utc, utcnow
from ains.models.trust import tier_of
from ains.models.webhooks import DeliveryInput, DeliveryPolicy, EventFilter

log = logging.getLogger("ains.events")
DISPATCH_BATCH = 200
_NAMESPACE = uuid.UUID("0c1f6a52-7d0e-4c4e-9b7b-6a0f3d2e9c44")
CALLBACK_TARGET = "callback"


def _derived_id(prefix: str, *parts: str) -> str:
    return f"{prefix}_{uuid.uuid5(_NAMESPACE, chr(0).join(parts)).hex}"


def delivery_workflow_id(delivery_id: str, replay: int = 0) -> str:
    return f"webhook-{delivery_id}" if replay == 0 else f"webhook-{delivery_id}-replay-{replay}"


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    return DeliveryPolicy(
        retry_period_seconds=settings.webhook_retry_period_seconds,
        initial_backoff_seconds=settings.webhook_initial_backoff_seconds,
        max_backoff_seconds=settings.webhook_max_backoff_seconds,
        request_timeout_seconds=settings.webhook_request_timeout_seconds,
    )


Target = tuple[str, str | None, str]  # (target key, subscription id, url)


async def _targets(
    session: AsyncSession, event: Event, client_id: str | None, callback_url: str | None
) -> list[Target]:
    query = select(WebhookSubscription)
    if client_id is not None:
        query = query.where(WebhookSubscription.client_id == client_id)
    targets: list[Target] = []
    for sub in (await session.execute(query)).scalars():
        if event.type.value not in sub.event_types:
            continue
        if sub.filter and not EventFilter.model_validate(sub.filter).matches(event.data):
            continue
        targets.append((sub.id, sub.id, sub.url))
    if callback_url:
        targets.append((CALLBACK_TARGET, None, callback_url))
    return targets


async def _write_deliveries(
    session: AsyncSession, event: Event, client_id: str | None, targets: list[Target]
) -> list[str]:
    created: list[str] = []
    payload = event.model_dump(mode="json")
    for key, subscription_id, url in targets:
        delivery_id = _derived_id("dlv", event.id, key)
        if await session.get(WebhookDelivery, delivery_id) is not None:
            continue
        session.add(
            WebhookDelivery(
                id=delivery_id,
                event_id=event.id,
                event_type=event.type.value,
                client_id=client_id,
                subscription_id=subscription_id,
                url=url,
                payload=payload,
                status="pending",
            )
        )
        created.append(delivery_id)
    await session.flush()
    return created


async def record_event(
    session: AsyncSession, event: Event, *, client_id: str | None, callback_url: str | None = None
) -> list[str]:
    """Write a pending delivery for every subscription that wants ``event`` (and the callback URL).

    ``client_id`` None means the event concerns every client (agents and trust are shared).
    Returns the ids of deliveries created now (existing ones are left alone).
    """
    targets = await _targets(session, event, client_id, callback_url)
    return await _write_deliveries(session, event, client_id, targets) if targets else []


def task_event(task: Task, status: str) -> Event | None:
    event_type = TASK_EVENT_BY_STATUS.get(status)
    if event_type is None:
        return None
    data: dict[str, Any] = {
        "task_id": task.id,
        "task_type": task.type,
        "status": status,
        "agent_id": task.assigned_agent_id,
        "attempts": task.attempts,
        "result": task.result,
        "error": task.error,
        "error_code": task.error_code,
        "schedule_id": task.schedule_id,
        "workflow_id": task.workflow_id,
    }
    created = as_utc(task.completed_at) or as_utc(task.updated_at) or utcnow()
    return Event(id=_derived_id("evt", task.id, event_type.value), type=event_type, created_at=created, data=data)


# Whether a finished task's event goes anywhere: its callback, or a subscription of its client.
_LISTENED = select(
    Task.callback_url,
    exists().where(WebhookSubscription.client_id == Task.client_id).label("subscribed"),
).where(Task.id == bindparam("b_task"))
_PENDING_DELIVERIES = (
    select(WebhookDelivery)
    .where(WebhookDelivery.dispatched_at.is_(None))
    .order_by(WebhookDelivery.created_at)
    .limit(DISPATCH_BATCH)
)


async def emit_task_event(db: Database, temporal: Client, settings: Settings, task_id: str, status: str) -> list[str]:
    """The task reached ``status`` (final): record its event for subscribers and its callback, deliver it.

    Reads first and writes only when someone listens, so tasks nobody subscribed to cost one read.
    """
    created: list[str] = []
    async with db.session() as session:
        listened = (await session.execute(_LISTENED, {"b_task": task_id})).first()
        # Nobody listens (no callback, no subscription of the client): the common case costs that one read.
        heard = listened is not None and bool(listened.callback_url or listened.subscribed)
        task = await session.get(Task, task_id) if heard else None
        event = task_event(task, status) if task is not None else None
        targets = await _targets(session, event, task.client_id, task.callback_url) if task and event else []
    if task is not None and event is not None and targets:
        async with db.transaction() as session:
            created = await _write_deliveries(session, event, task.client_id, targets)
    await dispatch_pending(db, temporal, settings)
    return created


async def emit_tier_change(
    session: AsyncSession,
    agent_id: str,
    score_before: float,
    score_after: float,
    *,
    task_id: str | None = None,
    reason: str | None = None,
) -> list[str]:
    """Record ``trust.tier_changed`` when the score crossed a tier boundary; no-op otherwise.

    Call it inside the transaction that records the trust change, so the event exists exactly when the
    change does. Its deliveries are started by the next ``dispatch_pending`` (run when the task finishes;
    call it yourself after committing changes made outside a task).
    """
    before, after = tier_of(score_before), tier_of(score_after)
    if before == after:
        return []
    event = Event(
        id=f"evt_{uuid.uuid4().hex}",
        type=EventType.TRUST_TIER_CHANGED,
        created_at=utcnow(),
        data={
            "agent_id": agent_id,
            "tier_before": before.value,
            "tier_after": after.value,
            "score_before": score_before,
            "score_after": score_after,
            "task_id": task_id,
            "reason": reason,
        },
    )
    return await record_event(session, event, client_id=None)


async def emit_agent_unavailable(session: AsyncSession, agent_id: str, reason: str) -> list[str]:
    """Record ``agent.unavailable``; call inside the transaction that marks the agent unavailable."""
    event = Event(
        id=f"evt_{uuid.uuid4().hex}",
        type=EventType.AGENT_UNAVAILABLE,
        created_at=utcnow(),
        data={"agent_id": agent_id, "reason": reason},
    )
    return await record_event(session, event, client_id=None)


async def start_delivery(
    temporal: Client, settings: Settings, delivery: WebhookDelivery, *, first_attempt: int = 1, replay: int = 0
) -> None:
    attributes = [SearchAttributePair(sa.CLIENT_ID, delivery.client_id)] if delivery.client_id else []
    try:
        await temporal.start_workflow(
            WEBHOOK_WORKFLOW_NAME,
            DeliveryInput(delivery_id=delivery.id, first_attempt=first_attempt, policy=delivery_policy(settings)),
            id=delivery_workflow_id(delivery.id, replay),
            task_queue=WEBHOOKS_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(attributes),
            static_summary=f"{delivery.event_type} -> {delivery.url}",
        )
    except WorkflowAlreadyStartedError:
        pass


async def dispatch_pending(db: Database, temporal: Client, settings: Settings) -> int:
    """Start the delivery workflow of every delivery not started yet. Safe to run concurrently and repeatedly.

    Raises ``Unavailable`` when Temporal refused some (they stay pending for the next call).
    """
    started = 0
    failures: list[str] = []
    async with db.session() as session:
        pending = list((await session.execute(_PENDING_DELIVERIES)).scalars())
    for delivery in pending:
        try:
            await start_delivery(temporal, settings, delivery)
        except RPCError as exc:  # Temporal down: the rows stay undispatched and the next dispatch retries
            log.warning("could not start delivery %s: %s", delivery.id, exc.message)
            failures.append(exc.message)
            continue
        async with db.transaction() as session:
            row = await session.get(WebhookDelivery, delivery.id)
            if row is not None and row.dispatched_at is None:
                row.dispatched_at = utcnow()
        started += 1
    if failures:
        raise Unavailable(f"{len(failures)} webhook deliveries could not be started: {failures[0]}")
    return started
