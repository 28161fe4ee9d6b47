"""Adaptive routing's state in the registry: evidence per (tag, agent), one observation per attempt and tag,
and clients' feedback, which replaces an observation's provisional quality (success 1, failure 0).

Observations are written in the transaction that records the attempt (core.tasks.attempts), after its trust
update, so they happen at most once per (task, attempt) like trust; the agent row that transaction locks
serialises them per agent on Postgres. Snapshots (core.routing.snapshot) pick the evidence up when they load agents:
every write here touches the agent's row, which is how a snapshot refresh finds what changed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.access.ownership import owned
from ains.core.platform.errors import Conflict, NotFound
from ains.core.platform.settings import Settings, get_settings
from ains.models import adaptive
from ains.models.feedback import FeedbackCreate, FeedbackView, LearnedFigures, LearnedTagView, Objectives
from ains.models.routing import MIN_TAG_SAMPLES, Candidate, TagStats
from ains.models.tables import (
    AdaptiveObservation,
    AdaptiveStat,
    Agent,
    AgentCapability,
    LlmCall,
    Task,
    TaskAttempt,
    TaskFeedback,
    as_utc,
    utcnow,
)
from ains.models.tasks import TaskStatus
from ains.models.workflow_io import AdaptiveTuning, AttemptRecord, CallOutcome

# Above this many agents a load reads every evidence row rather than list the agents in the statement.
_IN_LIST_LIMIT = 500


def tuning_for(objectives: dict[str, float] | None, settings: Settings) -> AdaptiveTuning:
    """The adaptive strategy's objective for a task: its own weights, else the defaults in Settings."""
    weights = Objectives.model_validate(objectives) if objectives else settings.adaptive_objectives
    return AdaptiveTuning(
        quality=weights.quality,
        latency=weights.latency,
        cost=weights.cost,
        latency_scale_ms=settings.adaptive_latency_scale_ms,
        cost_scale_usd=settings.adaptive_cost_scale_usd,
        exploration_floor=settings.adaptive_exploration_floor,
        exploration_cap=settings.adaptive_exploration_cap,
    )


def _evidence(row: AdaptiveStat | None) -> adaptive.Evidence | None:
    if row is None:
        return None
    return adaptive.Evidence(
        row.observations, row.weight, row.quality, row.log_latency, row.log_latency_sq, row.cost, row.cost_sq
    )


def _store(row: AdaptiveStat, evidence: adaptive.Evidence) -> None:
    row.observations = evidence.n
    row.weight = evidence.weight
    row.quality = evidence.quality
    row.log_latency = evidence.log_latency
    row.log_latency_sq = evidence.log_latency_sq
    row.cost = evidence.cost
    row.cost_sq = evidence.cost_sq
    row.updated_at = utcnow()


async def attach(session: AsyncSession, candidates: list[Candidate]) -> None:
    """Give every candidate's tags their learned posterior, in place (right after loading, before sharing)."""
    if not candidates:
        return
    ids = [c.agent_id for c in candidates]
    stats = select(AdaptiveStat)
    prices = select(Agent.id, Agent.price_per_call_usd).where(Agent.price_per_call_usd.is_not(None))
    if len(ids) <= _IN_LIST_LIMIT:
        stats = stats.where(AdaptiveStat.agent_id.in_(ids))
        prices = prices.where(Agent.id.in_(ids))
    evidence = {(r.agent_id, r.tag): _evidence(r) for r in (await session.execute(stats)).scalars()}
    price_of = {agent_id: float(price) for agent_id, price in await session.execute(prices) if price is not None}
    for c in candidates:
        is_llm = c.endpoint_url.startswith("llm://")
        price = price_of.get(c.agent_id)
        for tag, s in c.tags.items():
            learned = adaptive.posterior(
                evidence.get((c.agent_id, tag)), c.effective_trust([tag]), c.avg_response_ms, price, is_llm
            )
            c.tags[tag] = TagStats(s.version, s.trust, s.samples, learned)


async def _stat_rows(session: AsyncSession, agent_id: str, tags: Sequence[str]) -> dict[str, AdaptiveStat]:
    rows = await session.execute(
        select(AdaptiveStat).where(AdaptiveStat.agent_id == agent_id, AdaptiveStat.tag.in_(tags)).with_for_update()
    )
    return {r.tag: r for r in rows.scalars()}


async def observe_attempt(session: AsyncSession, record: AttemptRecord, strategy: str | None, tags: list[str]) -> None:
    """Add the attempt to the evidence of each tag it required (called once per attempt, by record_attempt, for
    a task routed with ``strategy``)."""
    settings = get_settings()
    if not tags or not (settings.adaptive_learning or strategy == "adaptive"):
        return
    agent = await session.get(Agent, record.agent_id)  # locked and loaded by the trust update already
    if agent is None:
        return
    cost = agent.price_per_call_usd or 0.0
    if agent.kind == "llm":
        call = await session.get(LlmCall, f"task:{record.task_id}:{record.attempt}")
        cost = call.cost_usd if call is not None else 0.0
    quality = 1.0 if record.result.outcome is CallOutcome.SUCCESS else 0.0
    obs = adaptive.Observation(quality, record.result.duration_ms, cost)
    rows = await _stat_rows(session, agent.id, tags)
    for tag in tags:
        row = rows.get(tag)
        if row is None:
            row = AdaptiveStat(
                agent_id=agent.id,
                tag=tag,
                observations=0,
                weight=0.0,
                quality=0.0,
                log_latency=0.0,
                log_latency_sq=0.0,
                cost=0.0,
                cost_sq=0.0,
                feedback_count=0,
            )
            session.add(row)
        evidence = adaptive.observe(_evidence(row) or adaptive.Evidence(), obs, settings.adaptive_discount)
        _store(row, evidence)
        session.add(
            AdaptiveObservation(
                task_id=record.task_id,
                attempt=record.attempt,
                tag=tag,
                agent_id=agent.id,
                seq=evidence.n,
                quality=quality,
                source="outcome",
                latency_ms=record.result.duration_ms,
                cost_usd=cost,
                created_at=utcnow(),
            )
        )


async def _apply_quality(session: AsyncSession, task_id: str, attempt: int, agent_id: str, quality: float) -> bool:
    """Replace the quality of the attempt's observations by ``quality``; False when there are none."""
    agent = (await session.execute(select(Agent).where(Agent.id == agent_id).with_for_update())).scalar_one_or_none()
    observations = list(
        (
            await session.execute(
                select(AdaptiveObservation).where(
                    AdaptiveObservation.task_id == task_id, AdaptiveObservation.attempt == attempt
                )
            )
        ).scalars()
    )
    if agent is None or not observations:
        return False
    rows = await _stat_rows(session, agent_id, [o.tag for o in observations])
    discount = get_settings().adaptive_discount
    for o in observations:
        row = rows.get(o.tag)
        if row is None:
            continue
        if o.quality != quality:
            evidence = adaptive.replace_quality(
                _evidence(row) or adaptive.Evidence(), o.seq, o.quality, quality, discount
            )
            _store(row, evidence)
        if o.source != "feedback":
            row.feedback_count += 1
        o.quality = quality
        o.source = "feedback"
    agent.updated_at = utcnow()  # so that routing snapshots reload the agent
    return True


def _feedback_view(row: TaskFeedback, applied: bool) -> FeedbackView:
    return FeedbackView(
        task_id=row.task_id,
        client_id=row.client_id,
        agent_id=row.agent_id,
        attempt=row.attempt,
        score=row.score,
        label=row.label,
        comment=row.comment,
        revisions=row.revisions,
        applied=applied,
        created_at=as_utc(row.created_at) or utcnow(),
        updated_at=as_utc(row.updated_at) or utcnow(),
    )


async def give_feedback(
    session: AsyncSession, task_id: str, client_id: str, visible_client: str | None, spec: FeedbackCreate
) -> tuple[FeedbackView, bool]:
    """Store the client's score for the task's result (replacing an earlier one) and let it stand in for the
    success in the evidence of the agent that produced the result. Returns the view and whether it is new.

    Another client's task is not found (404); a task without a result yet, or without one at all, is 409.
    With several clients' scores for one task (its owner and an admin), the evidence uses their mean.
    """
    task = owned(await session.get(Task, task_id), visible_client, f"task {task_id!r}")
    if task.status != TaskStatus.SUCCEEDED.value:
        raise Conflict(
            f"task {task_id!r} is {task.status}: feedback rates the result of a succeeded task; "
            "send it once the task has succeeded"
        )
    produced = (
        await session.execute(
            select(TaskAttempt.attempt, TaskAttempt.agent_id)
            .where(TaskAttempt.task_id == task_id, TaskAttempt.status == "succeeded")
            .order_by(TaskAttempt.attempt.desc())
            .limit(1)
        )
    ).first()
    attempt, agent_id = (produced[0], produced[1]) if produced is not None else (None, task.assigned_agent_id)
    now = utcnow()
    row = await session.get(TaskFeedback, (task_id, client_id))
    created = row is None
    if row is None:
        row = TaskFeedback(task_id=task_id, client_id=client_id, revisions=1, created_at=now)
        session.add(row)
    else:
        row.revisions += 1
    row.agent_id, row.attempt = agent_id, attempt
    row.score, row.label, row.comment, row.updated_at = spec.score, spec.label, spec.comment, now
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent first feedback of the same client won the race
        raise Conflict(f"feedback on task {task_id!r} is being sent concurrently; retry") from exc
    mean = (await session.execute(select(func.avg(TaskFeedback.score)).where(TaskFeedback.task_id == task_id))).scalar()
    applied = False
    if attempt is not None and agent_id is not None and mean is not None:
        applied = await _apply_quality(session, task_id, attempt, agent_id, float(mean))
    await session.flush()
    return _feedback_view(row, applied), created


async def get_feedback(session: AsyncSession, task_id: str, client_id: str, visible_client: str | None) -> FeedbackView:
    task = owned(await session.get(Task, task_id), visible_client, f"task {task_id!r}")
    row = await session.get(TaskFeedback, (task_id, client_id))
    if row is None:
        raise NotFound(f"no feedback from client {client_id!r} on task {task_id!r}")
    applied = (
        row.attempt is not None
        and (await session.get(AdaptiveObservation, (task_id, row.attempt, _first_tag(task)))) is not None
    )
    return _feedback_view(row, applied)


def _first_tag(task: Task) -> str:
    from ains.models.capabilities import parse_requirement

    return min((parse_requirement(r).tag for r in task.required_capabilities), default="")


async def learned_view(session: AsyncSession, agent: Agent) -> list[LearnedTagView]:
    """The posterior of each of the agent's tags, as routing's snapshot computes it."""
    caps = list((await session.execute(select(AgentCapability).where(AgentCapability.agent_id == agent.id))).scalars())
    rows = {
        r.tag: r
        for r in (await session.execute(select(AdaptiveStat).where(AdaptiveStat.agent_id == agent.id))).scalars()
    }
    views = []
    for cap in sorted(caps, key=lambda c: c.tag):
        row = rows.get(cap.tag)
        trust = cap.trust_score if cap.total_tasks >= MIN_TAG_SAMPLES else agent.trust_score
        p = adaptive.posterior(
            _evidence(row), trust, agent.avg_response_ms, agent.price_per_call_usd, agent.kind == "llm"
        )
        views.append(
            LearnedTagView(
                tag=cap.tag,
                observations=row.observations if row else 0,
                evidence=round(p.weight, 3),
                feedback=row.feedback_count if row else 0,
                quality=LearnedFigures(mean=round(p.quality, 4), sd=round(p.quality_sd, 4)),
                latency_ms=LearnedFigures(mean=round(p.latency_ms, 1), sd=round(p.log_latency_sd, 4)),
                cost_usd=LearnedFigures(mean=round(p.cost, 6), sd=round(p.cost_sd, 6)),
                updated_at=as_utc(row.updated_at) if row else None,
            )
        )
    return views
