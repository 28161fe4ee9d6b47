"""LLM usage reports: tokens and cost summed by day, model, deployment, provider, agent, client or task."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Integer, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.platform.errors import InvalidInput
from ains.models.tables import LlmCall
from ains.models.usage import UsageGroup, UsageReport, UsageRow

MAX_ROWS = 10_000

_COLUMNS: dict[UsageGroup, tuple[str, Any]] = {
    UsageGroup.DAY: ("day", LlmCall.day),
    UsageGroup.MODEL: ("model_group", LlmCall.model_group),
    UsageGroup.DEPLOYMENT: ("deployment_id", LlmCall.deployment_id),
    UsageGroup.PROVIDER: ("provider", LlmCall.provider),
    UsageGroup.AGENT: ("agent_id", LlmCall.agent_id),
    UsageGroup.CLIENT: ("client_id", LlmCall.client_id),
    UsageGroup.TASK: ("task_id", LlmCall.task_id),
}


def _sums() -> list[Any]:
    settled = LlmCall.status.in_(("succeeded", "failed"))
    return [
        func.sum(case((settled, 1), else_=0)).label("calls"),
        func.sum(case((LlmCall.status == "failed", 1), else_=0)).label("failed_calls"),
        func.sum(case((LlmCall.cached.is_(True), 1), else_=0)).label("cached_calls"),
        func.coalesce(func.sum(LlmCall.prompt_tokens), 0).cast(Integer).label("prompt_tokens"),
        func.coalesce(func.sum(LlmCall.completion_tokens), 0).cast(Integer).label("completion_tokens"),
        func.coalesce(func.sum(LlmCall.total_tokens), 0).cast(Integer).label("total_tokens"),
        func.coalesce(func.sum(LlmCall.cost_usd), 0.0).label("cost_usd"),
    ]


def _row(values: dict[str, Any]) -> UsageRow:
    day = values.pop("day", None)
    return UsageRow(
        day=date.fromisoformat(day) if day else None,
        **{k: values.get(k) for k in ("model_group", "deployment_id", "provider", "agent_id", "client_id", "task_id")},
        calls=int(values["calls"] or 0),
        failed_calls=int(values["failed_calls"] or 0),
        cached_calls=int(values["cached_calls"] or 0),
        prompt_tokens=int(values["prompt_tokens"] or 0),
        completion_tokens=int(values["completion_tokens"] or 0),
        total_tokens=int(values["total_tokens"] or 0),
        cost_usd=round(float(values["cost_usd"] or 0.0), 10),
    )


async def usage_report(
    session: AsyncSession,
    *,
    group_by: list[UsageGroup],
    client_id: str | None = None,
    agent_id: str | None = None,
    task_id: str | None = None,
    since: date | None = None,
    until: date | None = None,
) -> UsageReport:
    """Settled calls only (reservations in flight and refusals carry no usage). ``client_id`` None: all."""
    if since and until and since > until:
        raise InvalidInput("since must not be after until")
    group_by = list(dict.fromkeys(group_by))
    filters: list[ColumnElement[bool]] = [LlmCall.status.in_(("succeeded", "failed"))]
    if client_id is not None:
        filters.append(LlmCall.client_id == client_id)
    if agent_id is not None:
        filters.append(LlmCall.agent_id == agent_id)
    if task_id is not None:
        filters.append(LlmCall.task_id == task_id)
    if since is not None:
        filters.append(LlmCall.day >= since.isoformat())
    if until is not None:
        filters.append(LlmCall.day <= until.isoformat())
    keys = [_COLUMNS[g][1].label(_COLUMNS[g][0]) for g in group_by]
    query = select(*keys, *_sums()).where(*filters)
    if keys:
        query = query.group_by(*[_COLUMNS[g][1] for g in group_by]).order_by(*[_COLUMNS[g][1] for g in group_by])
    rows = [_row(dict(r._mapping)) for r in (await session.execute(query.limit(MAX_ROWS))).all()]
    total = _row(dict((await session.execute(select(*_sums()).where(*filters))).one()._mapping))
    return UsageReport(group_by=group_by, rows=rows, total=total)
