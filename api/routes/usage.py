"""/v1/usage: LLM tokens and cost, by day and model (or agent, client, task, deployment, provider)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query

from ains.api.deps import State, TasksRead, visible_client
from ains.api.json_body import SafeJSONRoute
from ains.core.llm import usage
from ains.models.usage import UsageGroup, UsageReport

router = APIRouter(prefix="/v1/usage", tags=["llm"], route_class=SafeJSONRoute)


@router.get("", response_model=UsageReport)
async def usage_report(
    state: State,
    principal: TasksRead,
    group_by: Annotated[list[UsageGroup] | None, Query(description="Default: day and model.")] = None,
    client_id: Annotated[str | None, Query(max_length=64, description="Admins only.")] = None,
    agent_id: Annotated[str | None, Query(max_length=64)] = None,
    task_id: Annotated[str | None, Query(max_length=64)] = None,
    since: date | None = None,
    until: date | None = None,
) -> UsageReport:
    """Clients see their own usage; admins everyone's (or one client's with ``client_id``)."""
    visible = visible_client(principal)
    if visible is not None and client_id is not None and client_id != visible:
        raise HTTPException(403, "only admins can read another client's usage")
    async with state.db.session() as session:
        return await usage.usage_report(
            session,
            group_by=group_by or [UsageGroup.DAY, UsageGroup.MODEL],
            client_id=visible if visible is not None else client_id,
            agent_id=agent_id,
            task_id=task_id,
            since=since,
            until=until,
        )
