"""LLM calls with budgets, usage records, metrics and an optional response cache.

``LlmService.complete`` is what both the llm activity (task attempts) and the plan generator call:
cache lookup, then a budget reservation (refused before the call if it cannot fit), the call through the
provider manager, then settlement with the real tokens and cost, each DB step in its own transaction.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from ains.core.llm import budgets
from ains.core.llm.metrics import LLM_BUDGET_REFUSALS, LLM_CACHE_HITS, LLM_COST, LLM_TOKENS
from ains.core.llm.providers import ProviderManager
from ains.core.platform.db import Database
from ains.core.platform.errors import BudgetExceeded
from ains.core.platform.settings import Settings
from ains.models.llm import LlmAnswer

CACHE_PREFIX = "ains:llmcache:"


class ResponseCache(Protocol):
    async def get(self, key: str) -> LlmAnswer | None: ...

    async def put(self, key: str, answer: LlmAnswer, ttl_seconds: float) -> None: ...


class InProcessCache:
    def __init__(self) -> None:
        self._items: dict[str, tuple[float, str]] = {}

    async def get(self, key: str) -> LlmAnswer | None:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            self._items.pop(key, None)
            return None
        return LlmAnswer.model_validate_json(item[1])

    async def put(self, key: str, answer: LlmAnswer, ttl_seconds: float) -> None:
        self._items[key] = (time.monotonic() + ttl_seconds, answer.model_dump_json())


class RedisCache:
    """Shared by every worker; a Redis outage only disables caching, never the call."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def get(self, key: str) -> LlmAnswer | None:
        try:
            raw = await self._redis.get(CACHE_PREFIX + key)
        except (RedisError, OSError):
            return None
        return LlmAnswer.model_validate_json(raw) if raw else None

    async def put(self, key: str, answer: LlmAnswer, ttl_seconds: float) -> None:
        try:
            await self._redis.set(CACHE_PREFIX + key, answer.model_dump_json(), px=max(int(ttl_seconds * 1000), 1))
        except (RedisError, OSError):
            return


def cache_key(client_id: str, model_group: str, messages: list[dict[str, str]]) -> str:
    text = json.dumps([client_id, model_group, messages], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class CallContext:
    call_id: str
    client_id: str
    task_id: str | None = None
    attempt: int | None = None
    agent_id: str | None = None
    purpose: str = "task"


class LlmService:
    def __init__(
        self,
        db: Database,
        providers: ProviderManager,
        cache: ResponseCache | None = None,
        cache_ttl_seconds: float = 0.0,
    ) -> None:
        self.db = db
        self.providers = providers
        self.cache = cache
        self.cache_ttl_seconds = cache_ttl_seconds

    @classmethod
    def from_settings(cls, settings: Settings, db: Database, redis: Redis | None = None) -> LlmService:
        cache: ResponseCache | None = None
        if settings.llm_cache_ttl_seconds > 0:
            cache = RedisCache(redis) if redis is not None else InProcessCache()
        return cls(db, ProviderManager.from_settings(settings), cache, settings.llm_cache_ttl_seconds)

    async def complete(self, ctx: CallContext, model_group: str, messages: list[dict[str, str]]) -> LlmAnswer:
        """Raises BudgetExceeded before any call, InvalidInput for an unknown group, LlmCallFailed."""
        group = self.providers.group(model_group)
        key = cache_key(ctx.client_id, group.name, messages) if self.cache is not None else ""
        if self.cache is not None:
            hit = await self.cache.get(key)
            if hit is not None:
                LLM_CACHE_HITS.labels(group.name).inc()
                answer = hit.model_copy(
                    update={"cached": True, "usage": hit.usage.model_copy(update={"cost_usd": 0.0})}
                )
                await self._record_cached(ctx, answer)
                return answer
        estimate = self.providers.estimate_cost(group, "".join(m["content"] for m in messages))
        try:
            async with self.db.transaction() as session:
                reservation = await budgets.reserve(
                    session,
                    call_id=ctx.call_id,
                    client_id=ctx.client_id,
                    model_group=group.name,
                    estimate_usd=estimate,
                    task_id=ctx.task_id,
                    attempt=ctx.attempt,
                    agent_id=ctx.agent_id,
                    purpose=ctx.purpose,
                )
        except BudgetExceeded as exc:
            LLM_BUDGET_REFUSALS.inc()
            async with self.db.transaction() as session:
                await budgets.record_refusal(
                    session,
                    call_id=ctx.call_id,
                    client_id=ctx.client_id,
                    model_group=group.name,
                    error=exc.message,
                    task_id=ctx.task_id,
                    attempt=ctx.attempt,
                    agent_id=ctx.agent_id,
                    purpose=ctx.purpose,
                )
            raise
        if reservation.settled_answer is not None:
            return reservation.settled_answer
        try:
            answer = await self.providers.complete(group.name, messages)
        except BaseException as exc:  # failure, timeout or cancellation: release the reservation
            async with self.db.transaction() as session:
                await budgets.settle(session, ctx.call_id, None, getattr(exc, "message", None) or repr(exc))
            raise
        async with self.db.transaction() as session:
            await budgets.settle(session, ctx.call_id, answer)
        LLM_TOKENS.labels(answer.provider, "prompt").inc(answer.usage.prompt_tokens)
        LLM_TOKENS.labels(answer.provider, "completion").inc(answer.usage.completion_tokens)
        LLM_COST.labels(answer.provider).inc(answer.usage.cost_usd)
        if self.cache is not None:
            await self.cache.put(key, answer, self.cache_ttl_seconds)
        return answer

    async def _record_cached(self, ctx: CallContext, answer: LlmAnswer) -> None:
        async with self.db.transaction() as session:
            reservation = await budgets.reserve(
                session,
                call_id=ctx.call_id,
                client_id=ctx.client_id,
                model_group=answer.model_group,
                estimate_usd=0.0,
                task_id=ctx.task_id,
                attempt=ctx.attempt,
                agent_id=ctx.agent_id,
                purpose=ctx.purpose,
            )
            if reservation.settled_answer is None:
                await budgets.settle(session, ctx.call_id, answer)
