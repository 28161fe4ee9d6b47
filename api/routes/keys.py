"""/v1/keys: API key administration (admin scope)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ains.api.deps import Admin, State
from ains.api.json_body import SafeJSONRoute
from ains.core.access import keys
from ains.models.keys import ApiKeyCreate, ApiKeyCreated, ApiKeyView

router = APIRouter(prefix="/v1/keys", tags=["keys"], route_class=SafeJSONRoute)


@router.post("", status_code=201, response_model=ApiKeyCreated)
async def create_key(spec: ApiKeyCreate, state: State, _: Admin) -> ApiKeyCreated:
    """Create a key for a client (created if new). The secret is in this response only."""
    async with state.db.transaction() as session:
        return await keys.create_key(session, spec)


@router.get("", response_model=list[ApiKeyView])
async def list_keys(
    state: State, _: Admin, client_id: Annotated[str | None, Query(max_length=64)] = None
) -> list[ApiKeyView]:
    async with state.db.session() as session:
        return await keys.list_keys(session, client_id)


@router.delete("/{key_id}", response_model=ApiKeyView)
async def revoke_key(key_id: str, state: State, _: Admin) -> ApiKeyView:
    """Revoke a key; it stops working at once. Revoking twice is harmless."""
    async with state.db.transaction() as session:
        return await keys.revoke_key(session, key_id)
