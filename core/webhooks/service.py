"""Webhook subscriptions, delivery attempts, the dead-letter list and replays."""

from __future__ import annotations

import json
import secrets
import time
import uuid

import aiohttp
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from ains.core.access.ownership import owned
from ains.core.platform.db import Database
from ains.core.platform.errors import Conflict, Unavailable
from ains.core.platform.outbound_http import NoConnection, Unreachable, send
from ains.core.platform.pagination import Keyset
from ains.core.platform.settings import Settings
from ains.core.platform.signing import signed_headers
from ains.core.platform.url_safety import UnsafeUrl, UrlPolicy, check_url
from ains.core.webhooks.events import start_delivery
from ains.core.webhooks.verify import ATTEMPT_HEADER, DELIVERY_ID_HEADER, EVENT_ID_HEADER, EVENT_TYPE_HEADER
from ains.models.common import Page
from ains.models.events import EventType
from ains.models.tables import WebhookAttempt, WebhookDelivery, WebhookSubscription, as_utc, utcnow
from ains.models.webhooks import (
    AttemptRequest,
    AttemptResult,
    DeliveryAttemptView,
    DeliveryFinish,
    DeliveryStatus,
    DeliveryView,
    EventFilter,
    WebhookCreate,
    WebhookCreated,
    WebhookView,
)

MAX_PAGE_SIZE = 200
ERROR_CHARS = 300
USER_AGENT = "AINS-Webhooks/0.1"


def _sortable_id(prefix: str) -> str:
    """Ids that sort by creation time, so lists can page on the id alone."""
    return f"{prefix}_{time.time_ns() // 1_000_000:013x}{uuid.uuid4().hex[:16]}"


def _view(sub: WebhookSubscription) -> WebhookView:
    return WebhookView(
        id=sub.id,
        url=sub.url,
        event_types=[EventType(t) for t in sub.event_types],
        filter=EventFilter.model_validate(sub.filter) if sub.filter else None,
        description=sub.description,
        created_at=as_utc(sub.created_at) or utcnow(),
    )


async def create_subscription(db: Database, settings: Settings, client_id: str, spec: WebhookCreate) -> WebhookCreated:
    await check_url(str(spec.url), UrlPolicy.from_settings(settings))
    sub = WebhookSubscription(
        id=_sortable_id("whk"),
        client_id=client_id,
        url=str(spec.url),
        event_types=[t.value for t in spec.event_types],
        filter=spec.filter.model_dump(exclude_none=True) if spec.filter else None,
        secret=f"whsec_{secrets.token_urlsafe(32)}",
        description=spec.description,
    )
    async with db.transaction() as session:
        session.add(sub)
    return WebhookCreated(**_view(sub).model_dump(), secret=sub.secret)


async def get_subscription(session: AsyncSession, webhook_id: str, client_id: str | None) -> WebhookView:
    return _view(owned(await session.get(WebhookSubscription, webhook_id), client_id, f"webhook {webhook_id!r}"))


SUBSCRIPTIONS = Keyset("webhooks", (WebhookSubscription.id,))
DELIVERIES = Keyset("webhook_deliveries", (WebhookDelivery.created_at, WebhookDelivery.id), descending=True)


async def list_subscriptions(
    session: AsyncSession, client_id: str | None, *, limit: int = 50, cursor: str | None = None
) -> Page[WebhookView]:
    page_size = min(limit, MAX_PAGE_SIZE)
    query = select(WebhookSubscription)
    if client_id is not None:
        query = query.where(WebhookSubscription.client_id == client_id)
    found = list((await session.execute(SUBSCRIPTIONS.page_query(query, page_size, cursor))).scalars())
    rows, next_cursor = SUBSCRIPTIONS.page(found, page_size)
    return Page[WebhookView](items=[_view(r) for r in rows], next_cursor=next_cursor)


async def delete_subscription(session: AsyncSession, webhook_id: str, client_id: str | None) -> None:
    """Stops new deliveries; pending ones end as dead (their secret is gone). History stays."""
    await session.delete(
        owned(await session.get(WebhookSubscription, webhook_id), client_id, f"webhook {webhook_id!r}")
    )


# --- deliveries --------------------------------------------------------------------------------------


def _delivery_view(row: WebhookDelivery, attempts: list[WebhookAttempt] | None = None) -> DeliveryView:
    return DeliveryView(
        id=row.id,
        event_id=row.event_id,
        event_type=EventType(row.event_type),
        subscription_id=row.subscription_id,
        url=row.url,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        replays=row.replays,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        payload=row.payload,
        created_at=as_utc(row.created_at) or utcnow(),
        updated_at=as_utc(row.updated_at) or utcnow(),
        completed_at=as_utc(row.completed_at),
        attempt_log=[
            DeliveryAttemptView(
                attempt=a.attempt,
                status_code=a.status_code,
                latency_ms=a.latency_ms,
                error=a.error,
                created_at=as_utc(a.created_at) or utcnow(),
            )
            for a in attempts or []
        ],
    )


async def list_deliveries(
    session: AsyncSession,
    client_id: str | None,
    *,
    status: DeliveryStatus | None = None,
    webhook_id: str | None = None,
    event_type: EventType | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[DeliveryView]:
    """Newest first. ``status=dead`` is the dead-letter list."""
    page_size = min(limit, MAX_PAGE_SIZE)
    query = select(WebhookDelivery)
    if client_id is not None:
        query = query.where(WebhookDelivery.client_id == client_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status.value)
    if webhook_id is not None:
        query = query.where(WebhookDelivery.subscription_id == webhook_id)
    if event_type is not None:
        query = query.where(WebhookDelivery.event_type == event_type.value)
    found = list((await session.execute(DELIVERIES.page_query(query, page_size, cursor))).scalars())
    rows, next_cursor = DELIVERIES.page(found, page_size)
    return Page[DeliveryView](items=[_delivery_view(r) for r in rows], next_cursor=next_cursor)


async def get_delivery(session: AsyncSession, delivery_id: str, client_id: str | None) -> DeliveryView:
    row = owned(await session.get(WebhookDelivery, delivery_id), client_id, f"delivery {delivery_id!r}")
    attempts = list(
        (
            await session.execute(
                select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.attempt)
            )
        ).scalars()
    )
    return _delivery_view(row, attempts)


async def replay_delivery(
    db: Database, temporal: Client, settings: Settings, delivery_id: str, client_id: str | None
) -> DeliveryView:
    """Deliver a dead-lettered delivery again, with a fresh retry period; attempt numbers keep counting."""
    async with db.transaction() as session:
        row = owned(await session.get(WebhookDelivery, delivery_id), client_id, f"delivery {delivery_id!r}")
        if row.status != DeliveryStatus.DEAD.value:
            raise Conflict(
                f"delivery {delivery_id!r} is {row.status}; only dead-lettered deliveries (status=dead) can be replayed"
            )
        row.status = DeliveryStatus.PENDING.value
        row.replays += 1
        row.completed_at = None
        row.updated_at = utcnow()
        replay, first_attempt = row.replays, row.attempts + 1
    try:
        await start_delivery(temporal, settings, row, first_attempt=first_attempt, replay=replay)
    except RPCError as exc:
        async with db.transaction() as session:
            back = await session.get(WebhookDelivery, delivery_id)
            if back is not None:
                back.status, back.replays = DeliveryStatus.DEAD.value, back.replays - 1
                back.completed_at = utcnow()
        raise Unavailable(f"Temporal is unreachable, the delivery was not replayed: {exc.message}") from exc
    async with db.session() as session:
        return await get_delivery(session, delivery_id, client_id)


async def _record_attempt(db: Database, request: AttemptRequest, result: AttemptResult) -> None:
    async with db.transaction() as session:
        row = await session.get(WebhookDelivery, request.delivery_id)
        if row is None:
            return
        if await session.get(WebhookAttempt, (request.delivery_id, request.attempt)) is None:
            session.add(
                WebhookAttempt(
                    delivery_id=request.delivery_id,
                    attempt=request.attempt,
                    status_code=result.status_code,
                    latency_ms=result.latency_ms,
                    error=result.error,
                )
            )
        row.attempts = max(row.attempts, request.attempt)
        row.last_status_code = result.status_code
        row.last_error = result.error
        row.updated_at = utcnow()
        if result.delivered:
            row.status = DeliveryStatus.SUCCEEDED.value
            row.completed_at = utcnow()


async def attempt_delivery(
    db: Database, http: aiohttp.ClientSession, settings: Settings, request: AttemptRequest
) -> AttemptResult:
    """POST the event once, signed; record the attempt. Receiver failures are results, not exceptions."""
    async with db.session() as session:
        row = await session.get(WebhookDelivery, request.delivery_id)
        sub = await session.get(WebhookSubscription, row.subscription_id) if row and row.subscription_id else None
    if row is None:
        return AttemptResult(delivered=False, error="delivery no longer exists", permanent=True)
    if row.status == DeliveryStatus.SUCCEEDED.value:
        return AttemptResult(delivered=True, status_code=row.last_status_code)
    if row.subscription_id is not None and sub is None:
        result = AttemptResult(delivered=False, error="the webhook subscription was deleted", permanent=True)
        await _record_attempt(db, request, result)
        return result
    secret = sub.secret if sub is not None else settings.callback_signing_secret
    try:
        await check_url(row.url, UrlPolicy.from_settings(settings), require_resolution=True)
    except UnsafeUrl as exc:
        result = AttemptResult(delivered=False, error=exc.message, permanent=True)
        await _record_attempt(db, request, result)
        return result
    body = json.dumps(row.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: row.event_id,
        EVENT_TYPE_HEADER: row.event_type,
        DELIVERY_ID_HEADER: row.id,
        ATTEMPT_HEADER: str(request.attempt),
        **signed_headers(secret, body),
    }
    started = time.perf_counter()
    status_code: int | None = None
    error: str | None = None
    try:
        response = await send(http, "POST", row.url, limit_seconds=request.timeout_seconds, body=body, headers=headers)
        status_code = response.status
        if not 200 <= status_code < 300:
            error = f"receiver answered HTTP {status_code}: {response.text(ERROR_CHARS)}"
    except TimeoutError:
        error = f"receiver did not answer within {request.timeout_seconds:g}s"
    except (NoConnection, Unreachable) as exc:
        error = f"receiver unreachable: {exc}"
    latency = round((time.perf_counter() - started) * 1000, 3)
    result = AttemptResult(delivered=error is None, status_code=status_code, latency_ms=latency, error=error)
    await _record_attempt(db, request, result)
    return result


async def finish_delivery(session: AsyncSession, finish: DeliveryFinish) -> None:
    """The workflow gave up: move a still-pending delivery to the dead-letter list."""
    row = await session.get(WebhookDelivery, finish.delivery_id)
    if row is None or row.status != DeliveryStatus.PENDING.value:
        return
    row.status = finish.status.value
    row.completed_at = utcnow()
    row.updated_at = utcnow()
    if finish.error:
        row.last_error = finish.error
