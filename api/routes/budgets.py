"""/v1/budgets: per-client daily LLM budgets (set by admins, readable by the client)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response

from ains.api.deps import Admin, State, TasksRead, visible_client
from ains.api.json_body import SafeJSONRoute
from ains.core.llm import budgets
from ains.models.keys import CLIENT_ID_PATTERN
from ains.models.usage import BudgetSet, BudgetView

router = APIRouter(prefix="/v1/budgets", tags=["llm"], route_class=SafeJSONRoute)

ClientId = Annotated[str, Path(pattern=CLIENT_ID_PATTERN)]


@router.put("/{client_id}", response_model=BudgetView)
async def set_budget(client_id: ClientId, spec: BudgetSet, state: State, _: Admin) -> BudgetView:
    """Set the client's daily limit (USD, UTC day); calls that would exceed it are refused before they are made."""
    async with state.db.transaction() as session:
        return await budgets.set_budget(session, client_id, spec)


@router.get("/{client_id}", response_model=BudgetView)
async def get_budget(client_id: ClientId, state: State, principal: TasksRead) -> BudgetView:
    visible = visible_client(principal)
    if visible is not None and visible != client_id:
        raise HTTPException(403, "only admins can read another client's budget")
    async with state.db.session() as session:
        return await budgets.get_budget(session, client_id)


@router.delete("/{client_id}", status_code=204)
async def delete_budget(client_id: ClientId, state: State, _: Admin) -> Response:
    """Remove the limit (spending is still recorded)."""
    async with state.db.transaction() as session:
        await budgets.delete_budget(session, client_id)
    return Response(status_code=204)
