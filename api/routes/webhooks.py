"""/v1/webhooks: subscriptions, deliveries, the dead-letter list and replays. Clients see only their own."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from ains.api.deps import Cursor, State, TasksRead, TasksWrite, visible_client
from ains.api.json_body import SafeJSONRoute
from ains.core.webhooks import service as webhooks
from ains.models.common import Page
from ains.models.events import EventType
from ains.models.webhooks import DeliveryStatus, DeliveryView, WebhookCreate, WebhookCreated, WebhookView

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], route_class=SafeJSONRoute)


@router.post("", status_code=201, response_model=WebhookCreated)
async def create_webhook(
    spec: WebhookCreate, state: State, principal: TasksWrite, response: Response
) -> WebhookCreated:
    """Subscribe a URL to event types. The response carries the signing secret, shown only this once."""
    created = await webhooks.create_subscription(state.db, state.settings, principal.client_id, spec)
    response.headers["Location"] = f"/v1/webhooks/{created.id}"
    return created


@router.get("", response_model=Page[WebhookView])
async def list_webhooks(
    state: State,
    principal: TasksRead,
    limit: Annotated[int, Query(ge=1, le=webhooks.MAX_PAGE_SIZE)] = 50,
    cursor: Cursor = None,
) -> Page[WebhookView]:
    async with state.db.session() as session:
        return await webhooks.list_subscriptions(session, visible_client(principal), limit=limit, cursor=cursor)


@router.get("/deliveries", response_model=Page[DeliveryView])
async def list_deliveries(
    state: State,
    principal: TasksRead,
    status: DeliveryStatus | None = None,
    webhook_id: Annotated[str | None, Query(max_length=64)] = None,
    event_type: EventType | None = None,
    limit: Annotated[int, Query(ge=1, le=webhooks.MAX_PAGE_SIZE)] = 50,
    cursor: Cursor = None,
) -> Page[DeliveryView]:
    """``status=dead`` lists the dead-letter queue."""
    async with state.db.session() as session:
        return await webhooks.list_deliveries(
            session,
            visible_client(principal),
            status=status,
            webhook_id=webhook_id,
            event_type=event_type,
            limit=limit,
            cursor=cursor,
        )


@router.get("/deliveries/{delivery_id}", response_model=DeliveryView)
async def get_delivery(delivery_id: str, state: State, principal: TasksRead) -> DeliveryView:
    """The delivery with every attempt: status code, latency, error."""
    async with state.db.session() as session:
        return await webhooks.get_delivery(session, delivery_id, visible_client(principal))


@router.post("/deliveries/{delivery_id}/replay", status_code=202, response_model=DeliveryView)
async def replay_delivery(delivery_id: str, state: State, principal: TasksWrite) -> DeliveryView:
    return await webhooks.replay_delivery(
        state.db, await state.temporal(), state.settings, delivery_id, visible_client(principal)
    )


@router.get("/{webhook_id}", response_model=WebhookView)
async def get_webhook(webhook_id: str, state: State, principal: TasksRead) -> WebhookView:
    async with state.db.session() as session:
        return await webhooks.get_subscription(session, webhook_id, visible_client(principal))


@router.delete("/{webhook_id}", status_code=204)
async def delete_webhook(webhook_id: str, state: State, principal: TasksWrite) -> Response:
    async with state.db.transaction() as session:
        await webhooks.delete_subscription(session, webhook_id, visible_client(principal))
    return Response(status_code=204)
