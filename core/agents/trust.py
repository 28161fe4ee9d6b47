"""Trust reads and admin overrides: history with trend, per-capability scores, the leaderboard."""

from __future__ import annotations

from typing import Any

from pydantic_core import to_json
from sqlalchemy import BindParameter, Float, bindparam, desc, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ains.core.platform.errors import NotFound
from ains.core.platform.metrics import TRUST_CHANGES
from ains.core.platform.pagination import Keyset
from ains.core.webhooks.events import emit_tier_change
from ains.models.routing import MIN_TAG_SAMPLES
from ains.models.tables import Agent, AgentCapability, TrustRecord, as_utc, utcnow
from ains.models.trust import TrustEvent, TrustTier, success_rate, tier_of
from ains.models.trust_views import (
    AgentTrustView,
    CapabilityTrustView,
    Leaderboard,
    TrustOverride,
    TrustRecordView,
    TrustTrend,
)

MAX_PAGE_SIZE = 500
TREND_WINDOW = 10
TREND_EPSILON = 1e-9
# Score range of each tier, as [low, high) except excellent which includes 1.0.
TIER_RANGES = {
    TrustTier.EXCELLENT: (0.90, 1.01),
    TrustTier.GOOD: (0.70, 0.90),
    TrustTier.AVERAGE: (0.50, 0.70),
    TrustTier.BELOW_AVERAGE: (0.30, 0.50),
    TrustTier.POOR: (0.0, 0.30),
}


def _record_view(r: TrustRecord) -> TrustRecordView:
    return TrustRecordView(
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


async def _trend(session: AsyncSession, agent_id: str) -> TrustTrend:
    recent = list(
        await session.execute(
            select(TrustRecord.score_before, TrustRecord.score_after)
            .where(TrustRecord.agent_id == agent_id)
            .order_by(TrustRecord.id.desc())
            .limit(TREND_WINDOW)
        )
    )
    if not recent:
        return TrustTrend(direction="stable", change=0.0, window=0)
    change = round(recent[0][1] - recent[-1][0], 6)
    direction = "rising" if change > TREND_EPSILON else "falling" if change < -TREND_EPSILON else "stable"
    return TrustTrend(direction=direction, change=change, window=len(recent))


TRUST_RECORDS = Keyset("trust_records", (TrustRecord.id,), descending=True)


async def agent_trust(
    session: AsyncSession, agent_id: str, limit: int = 50, cursor: str | None = None
) -> AgentTrustView:
    """Score, tier, trend, per-capability trust and the audit records, newest first (a page of them)."""
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id!r} not found")
    page_size = min(limit, MAX_PAGE_SIZE)
    query = TRUST_RECORDS.page_query(select(TrustRecord).where(TrustRecord.agent_id == agent_id), page_size, cursor)
    records, next_cursor = TRUST_RECORDS.page(list((await session.execute(query)).scalars()), page_size)
    caps = (
        await session.execute(
            select(AgentCapability).where(AgentCapability.agent_id == agent_id).order_by(AgentCapability.tag)
        )
    ).scalars()
    return AgentTrustView(
        agent_id=agent.id,
        trust_score=agent.trust_score,
        trust_tier=tier_of(agent.trust_score),
        success_rate=round(success_rate(agent.successful_tasks, agent.total_tasks), 4),
        total_tasks=agent.total_tasks,
        trend=await _trend(session, agent_id),
        capabilities=[
            CapabilityTrustView(
                tag=c.tag,
                trust_score=c.trust_score,
                trust_tier=tier_of(c.trust_score),
                total_tasks=c.total_tasks,
                success_rate=round(success_rate(c.successful_tasks, c.total_tasks), 4),
                used_for_routing=c.total_tasks >= MIN_TAG_SAMPLES,
            )
            for c in caps
        ],
        records=[_record_view(r) for r in records],
        next_cursor=next_cursor,
    )


async def override_trust(session: AsyncSession, agent_id: str, change: TrustOverride, actor: str) -> TrustRecordView:
    """Set an agent's score by hand. Audited like every other change, with who did it and why."""
    agent = (await session.execute(select(Agent).where(Agent.id == agent_id).with_for_update())).scalar_one_or_none()
    if agent is None:
        raise NotFound(f"agent {agent_id!r} not found")
    before = agent.trust_score
    after = round(change.score, 6)
    agent.trust_score = after
    record = TrustRecord(
        agent_id=agent_id,
        task_id=None,
        attempt=None,
        event_type=TrustEvent.OVERRIDE.value,
        score_before=before,
        score_after=after,
        delta=round(after - before, 6),
        reason=f"override by {actor}: {change.reason}",
        created_at=utcnow(),
    )
    session.add(record)
    await session.flush()
    await emit_tier_change(session, agent_id, before, after, reason=record.reason)
    TRUST_CHANGES.labels(TrustEvent.OVERRIDE.value).inc()
    return _record_view(record)


_LEADERBOARD_COLUMNS = (
    Agent.id,
    Agent.display_name,
    Agent.trust_score,
    Agent.successful_tasks,
    Agent.total_tasks,
    Agent.status,
)
# Built once per shape (building a select costs about as much as running this one); values are bound.
_OVERALL = select(*_LEADERBOARD_COLUMNS, literal(None, Float).label("tag_trust")).order_by(
    desc(Agent.trust_score), Agent.id
)
_BY_TAG = (
    select(*_LEADERBOARD_COLUMNS, AgentCapability.trust_score)
    .join(AgentCapability, AgentCapability.agent_id == Agent.id)
    .where(AgentCapability.tag == bindparam("tag"))
    .order_by(desc(AgentCapability.trust_score), desc(Agent.trust_score), Agent.id)
)
_LIMIT: BindParameter[int] = bindparam("limit")
_LEADERBOARDS = {
    (False, False): _OVERALL.limit(_LIMIT),
    (False, True): _OVERALL.where(Agent.trust_score >= bindparam("low"), Agent.trust_score < bindparam("high")).limit(
        _LIMIT
    ),
    (True, False): _BY_TAG.limit(_LIMIT),
    (True, True): _BY_TAG.where(
        AgentCapability.trust_score >= bindparam("low"), AgentCapability.trust_score < bindparam("high")
    ).limit(_LIMIT),
}


async def leaderboard_json(
    db: AsyncSession | AsyncConnection, *, limit: int = 20, tier: TrustTier | None = None, tag: str | None = None
) -> bytes:
    """The JSON of ``Leaderboard``: most trusted agents first. With ``tag``, only agents offering it, ranked
    by that capability's trust. ``db`` is a session or a plain connection.

    Reads only the columns an entry shows, as plain rows, and serializes them with pydantic-core (as
    FastAPI would the model) without building a validated model per entry.
    """
    params: dict[str, Any] = {"limit": min(limit, MAX_PAGE_SIZE)}
    if tag is not None:
        params["tag"] = tag
    if tier is not None:
        params["low"], params["high"] = TIER_RANGES[tier]
    rows = await db.execute(_LEADERBOARDS[tag is not None, tier is not None], params)
    entries = [
        {
            "rank": rank,
            "agent_id": agent_id,
            "display_name": display_name,
            "trust_score": score,
            "trust_tier": tier_of(score).value,
            "success_rate": round(success_rate(successes, total), 4),
            "total_tasks": total,
            "status": status,
            "tag_trust_score": tag_score,
        }
        for rank, (agent_id, display_name, score, successes, total, status, tag_score) in enumerate(rows, start=1)
    ]
    return to_json({"tag": tag, "tier": None if tier is None else tier.value, "entries": entries})


async def leaderboard(
    session: AsyncSession, *, limit: int = 20, tier: TrustTier | None = None, tag: str | None = None
) -> Leaderboard:
    """``leaderboard_json`` as a model."""
    return Leaderboard.model_validate_json(await leaderboard_json(session, limit=limit, tier=tier, tag=tag))
