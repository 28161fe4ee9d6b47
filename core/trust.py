"""Reading an agent's trust history (the audit trail written by core.attempts)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import InvalidInput, NotFound
from models.tables import Agent, TrustRecord, as_utc, utcnow
from models.trust import success_rate, tier_of
from models.trust_views import AgentTrustView, TrustRecordView

MAX_PAGE_SIZE = 500


async def agent_trust(
    session: AsyncSession, agent_id: str, limit: int = 50, cursor: str | None = None
) -> AgentTrustView:
    """Newest records first; ``cursor`` is the id of the last record of the previous page."""
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id!r} not found")
    page_size = min(limit, MAX_PAGE_SIZE)
    query = select(TrustRecord).where(TrustRecord.agent_id == agent_id).order_by(TrustRecord.id.desc())
    if cursor:
        if not cursor.isdigit():
            raise InvalidInput("cursor is not valid; pass the next_cursor value of a previous page")
        query = query.where(TrustRecord.id < int(cursor))
    rows = list((await session.execute(query.limit(page_size + 1))).scalars())
    records = [
        TrustRecordView(
            id=r.id,
            agent_id=r.agent_id,
            task_id=r.task_id,
            attempt=r.attempt,
            event_type=r.event_type,
            score_before=r.score_before,
            score_after=r.score_after,
            delta=r.delta,
            reason=r.reason,
            created_at=as_utc(r.created_at) or utcnow(),
        )
        for r in rows[:page_size]
    ]
    return AgentTrustView(
        agent_id=agent.id,
        trust_score=agent.trust_score,
        trust_tier=tier_of(agent.trust_score),
        success_rate=round(success_rate(agent.successful_tasks, agent.total_tasks), 4),
        total_tasks=agent.total_tasks,
        records=records,
        next_cursor=str(rows[page_size - 1].id) if len(rows) > page_size else None,
    )
