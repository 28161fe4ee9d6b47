"""Per-client daily LLM budgets: reserve an estimate before a call, settle with the real cost after it.

A reservation is one conditional UPDATE (``spent + reserved + estimate <= limit``) on the client's row for the
day, so concurrent calls cannot overspend on Postgres (row lock taken by the UPDATE) or SQLite (writers are
serialised). Each call has a stable id (``task:<id>:<attempt>``): a retried activity finds its reservation
instead of making a second one, and settling twice is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ains.core.platform.db import insert_or_merge
from ains.core.platform.errors import BudgetExceeded
from ains.models.llm import LlmAnswer
from ains.models.tables import ClientBudget, ClientSpend, LlmCall, as_utc, utcnow
from ains.models.usage import BudgetSet, BudgetView


def today() -> str:
    return datetime.now(UTC).date().isoformat()


def _usd(value: float) -> str:
    return f"${value:.6f}".rstrip("0").rstrip(".") if value else "$0"


async def _ensure_spend_row(session: AsyncSession, client_id: str, day: str) -> None:
    await session.execute(
        insert_or_merge(session, ClientSpend)
        .values(client_id=client_id, day=day, spent_usd=0.0, reserved_usd=0.0)
        .on_conflict_do_nothing(index_elements=["client_id", "day"])
    )


@dataclass(frozen=True)
class Reservation:
    call_id: str
    reserved_usd: float
    # A settled call found on retry: its stored answer is returned instead of calling again.
    settled_answer: LlmAnswer | None = None


async def reserve(
    session: AsyncSession,
    *,
    call_id: str,
    client_id: str,
    model_group: str,
    estimate_usd: float,
    task_id: str | None = None,
    attempt: int | None = None,
    agent_id: str | None = None,
    purpose: str = "task",
) -> Reservation:
    """Hold ``estimate_usd`` of the client's budget for this call; BudgetExceeded if it does not fit."""
    existing = await session.get(LlmCall, call_id)
    if existing is not None and existing.status == "reserved":
        return Reservation(call_id, existing.reserved_usd)
    if existing is not None and existing.status == "succeeded" and existing.answer is not None:
        return Reservation(call_id, 0.0, LlmAnswer.model_validate(existing.answer))
    day = existing.day if existing is not None else today()
    await _ensure_spend_row(session, client_id, day)
    budget = await session.get(ClientBudget, client_id)
    conditions = [ClientSpend.client_id == client_id, ClientSpend.day == day]
    if budget is not None:
        conditions.append(
            ClientSpend.spent_usd + ClientSpend.reserved_usd + estimate_usd <= budget.daily_limit_usd + 1e-12
        )
    result = await session.execute(
        update(ClientSpend)
        .where(*conditions)
        .values(reserved_usd=ClientSpend.reserved_usd + estimate_usd)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        assert budget is not None
        spend = (
            await session.execute(select(ClientSpend).where(ClientSpend.client_id == client_id, ClientSpend.day == day))
        ).scalar_one()
        raise BudgetExceeded(
            f"daily LLM budget of client {client_id!r} would be exceeded: limit {_usd(budget.daily_limit_usd)}, "
            f"spent {_usd(spend.spent_usd)}, reserved by calls in flight {_usd(spend.reserved_usd)}, "
            f"this call may cost up to {_usd(estimate_usd)} (day {day} UTC)"
        )
    if existing is None:
        session.add(
            LlmCall(
                id=call_id,
                client_id=client_id,
                task_id=task_id,
                attempt=attempt,
                agent_id=agent_id,
                purpose=purpose,
                day=day,
                status="reserved",
                model_group=model_group,
                reserved_usd=estimate_usd,
            )
        )
    else:  # an earlier refused or failed try of the same call id: reserve it again
        existing.status = "reserved"
        existing.reserved_usd = estimate_usd
        existing.error = None
    await session.flush()
    return Reservation(call_id, estimate_usd)


async def record_refusal(
    session: AsyncSession, *, call_id: str, client_id: str, model_group: str, error: str, **where: str | int | None
) -> None:
    """Keep a trace of a refused call (no spend), unless the call id already has a row."""
    if await session.get(LlmCall, call_id) is not None:
        return
    session.add(
        LlmCall(
            id=call_id,
            client_id=client_id,
            model_group=model_group,
            day=today(),
            status="refused",
            error=error[:2000],
            task_id=where.get("task_id"),
            attempt=where.get("attempt"),
            agent_id=where.get("agent_id"),
            purpose=str(where.get("purpose") or "task"),
        )
    )
    await session.flush()


async def settle(session: AsyncSession, call_id: str, answer: LlmAnswer | None, error: str | None = None) -> bool:
    """Release the reservation and book the real cost (zero on failure). False if already settled."""
    call = (await session.execute(select(LlmCall).where(LlmCall.id == call_id).with_for_update())).scalar_one_or_none()
    if call is None or call.status != "reserved":
        return False
    cost = answer.usage.cost_usd if answer is not None else 0.0
    await session.execute(
        update(ClientSpend)
        .where(ClientSpend.client_id == call.client_id, ClientSpend.day == call.day)
        .values(reserved_usd=ClientSpend.reserved_usd - call.reserved_usd, spent_usd=ClientSpend.spent_usd + cost)
        .execution_options(synchronize_session=False)
    )
    call.settled_at = utcnow()
    if answer is None:
        call.status = "failed"
        call.error = (error or "failed")[:2000]
    else:
        call.status = "succeeded"
        call.deployment_id = answer.deployment_id
        call.provider = answer.provider
        call.model = answer.model
        call.prompt_tokens = answer.usage.prompt_tokens
        call.completion_tokens = answer.usage.completion_tokens
        call.total_tokens = answer.usage.total_tokens
        call.cost_usd = cost
        call.cached = answer.cached
        call.latency_ms = answer.latency_ms
        call.answer = answer.model_dump(mode="json")
    await session.flush()
    return True


async def set_budget(session: AsyncSession, client_id: str, spec: BudgetSet) -> BudgetView:
    budget = await session.get(ClientBudget, client_id)
    if budget is None:
        session.add(ClientBudget(client_id=client_id, daily_limit_usd=spec.daily_limit_usd, updated_at=utcnow()))
    else:
        budget.daily_limit_usd = spec.daily_limit_usd
        budget.updated_at = utcnow()
    await session.flush()
    return await get_budget(session, client_id)


async def delete_budget(session: AsyncSession, client_id: str) -> None:
    budget = await session.get(ClientBudget, client_id)
    if budget is not None:
        await session.delete(budget)
        await session.flush()


async def get_budget(session: AsyncSession, client_id: str) -> BudgetView:
    day = today()
    budget = await session.get(ClientBudget, client_id)
    spend = (
        await session.execute(select(ClientSpend).where(ClientSpend.client_id == client_id, ClientSpend.day == day))
    ).scalar_one_or_none()
    spent = spend.spent_usd if spend else 0.0
    reserved = spend.reserved_usd if spend else 0.0
    limit = budget.daily_limit_usd if budget else None
    return BudgetView(
        client_id=client_id,
        daily_limit_usd=limit,
        day=date.fromisoformat(day),
        spent_usd=round(spent, 10),
        reserved_usd=round(max(reserved, 0.0), 10),
        remaining_usd=None if limit is None else round(max(limit - spent - reserved, 0.0), 10),
        updated_at=as_utc(budget.updated_at) if budget else None,
    )
