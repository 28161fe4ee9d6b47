"""/v1/audit: the audit log of mutations (admin scope)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from ains.api.deps import Admin, Cursor, State
from ains.api.json_body import SafeJSONRoute
from ains.core.access import audit
from ains.models.audit import AuditEntryView, AuditMethod
from ains.models.common import Page

router = APIRouter(prefix="/v1/audit", tags=["audit"], route_class=SafeJSONRoute)


@router.get("", response_model=Page[AuditEntryView])
async def list_audit(
    request: Request,
    state: State,
    _: Admin,
    client_id: Annotated[str | None, Query(max_length=64)] = None,
    key_id: Annotated[str | None, Query(max_length=36)] = None,
    method: AuditMethod | None = None,
    route: Annotated[
        str | None, Query(max_length=200, description="Route template, e.g. /v1/agents/{agent_id}")
    ] = None,
    resource_id: Annotated[str | None, Query(max_length=200)] = None,
    status_code: Annotated[int | None, Query(ge=100, le=599)] = None,
    since: Annotated[datetime | None, Query(description="Entries at or after this time (with a zone)")] = None,
    until: Annotated[datetime | None, Query(description="Entries before this time (with a zone)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Cursor = None,
) -> Page[AuditEntryView]:
    """Who changed what, when and from where: newest first, filtered, paginated with `next_cursor`."""
    if state.audit is not None:
        await state.audit.flush()  # this replica's entries still in the write buffer
    async with state.db.session() as session:
        return await audit.list_entries(
            session,
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
