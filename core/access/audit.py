"""The audit log of mutations: write one entry, list entries newest first with filters and a cursor."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.platform.pagination import Keyset
from ains.models.audit import AuditEntryView, AuditRecord
from ains.models.common import Page
from ains.models.tables import AuditEntry, as_utc, utcnow

ENTRIES = Keyset("audit", (AuditEntry.id,), descending=True)
_INSERT_ENTRY = insert(AuditEntry)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def record(session: AsyncSession, entry: AuditRecord) -> int:
    row = AuditEntry(**entry.model_dump())
    session.add(row)
    await session.flush()
    return row.id


async def record_many(session: AsyncSession, entries: list[AuditRecord]) -> None:
    """Write a batch of entries in one executemany (each keeps the time it was recorded at, in order). Not through
    the unit of work: it inserts row by row to learn each new id, which nobody here needs."""
    await session.execute(_INSERT_ENTRY, [entry.model_dump() for entry in entries])


def _view(row: AuditEntry) -> AuditEntryView:
    return AuditEntryView(
        id=row.id,
        created_at=as_utc(row.created_at) or utcnow(),
        client_id=row.client_id,
        key_id=row.key_id,
        method=row.method,
        route=row.route,
        path=row.path,
        resource_id=row.resource_id,
        status_code=row.status_code,
        client_ip=row.client_ip,
        user_agent=row.user_agent,
        request_id=row.request_id,
    )


async def list_entries(
    session: AsyncSession,
    *,
    client_id: str | None = None,
    key_id: str | None = None,
    method: str | None = None,
    route: str | None = None,
    resource_id: str | None = None,
    status_code: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[AuditEntryView]:
    """Entries newest first."""
    query = ENTRIES.page_query(select(AuditEntry), limit, cursor)
    for column, value in (
        (AuditEntry.client_id, client_id),
        (AuditEntry.key_id, key_id),
        (AuditEntry.method, method),
        (AuditEntry.route, route),
        (AuditEntry.resource_id, resource_id),
        (AuditEntry.status_code, status_code),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEntry.created_at >= _utc(since))
    if until is not None:
        query = query.where(AuditEntry.created_at < _utc(until))
    rows, next_cursor = ENTRIES.page(list((await session.execute(query)).scalars()), limit)
    return Page[AuditEntryView](items=[_view(r) for r in rows], next_cursor=next_cursor)
