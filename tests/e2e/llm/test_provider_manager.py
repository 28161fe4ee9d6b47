"""The provider manager and LLM service against a local OpenAI-compatible server (no network, litellm real).

Fallback on 500 and on timeout, cooldown of a failing deployment, tokens and cost recorded, budgets:
refusal before the call, no overspend under 20 concurrent calls, retries not double-counted; the cache.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from ains.core.llm import budgets
from ains.core.llm.metrics import LLM_CACHE_HITS, LLM_COST, LLM_TOKENS
from ains.core.llm.providers import LlmCallFailed, ProviderManager
from ains.core.llm.service import CallContext, InProcessCache, LlmService
from ains.core.llm.usage import usage_report
from ains.core.platform.errors import BudgetExceeded
from ains.core.platform.metrics import DOMAIN_REGISTRY
from ains.models.providers import ProvidersConfig
from ains.models.tables import ClientSpend, LlmCall
from ains.models.usage import BudgetSet, UsageGroup
from tests.support.fake_llm import FakeLLMServer
from tests.support.stack import Stack

MESSAGES = [{"role": "user", "content": "Summarize: AINS is durable."}]


def uid() -> str:
    return uuid.uuid4().hex[:8]


def two_tier_config(
    api_base: str, first: str, second: str, *, timeout: float = 5.0, allowed_fails: int = 100, cooldown: float = 60
) -> ProvidersConfig:
    def deployment(model: str, priority: int) -> dict[str, Any]:
        return {
            "id": model,
            "provider": f"prov-{model}",
            "model": f"openai/{model}",
            "api_base": api_base,
            "priority": priority,
            "input_cost_per_million": 1000.0,  # $0.001 per prompt token
            "output_cost_per_million": 2000.0,  # $0.002 per completion token
        }

    return ProvidersConfig.model_validate(
        {
            "cooldown": {"allowed_fails": allowed_fails, "cooldown_seconds": cooldown},
            "model_groups": [
                {
                    "name": "g",
                    "timeout_seconds": timeout,
                    "max_output_tokens": 10,
                    "deployments": [deployment(first, 1), deployment(second, 2)],
                }
            ],
        }
    )


def metric(name: str, labels: dict[str, str]) -> float:
    return DOMAIN_REGISTRY.get_sample_value(name, labels) or 0.0


async def test_fallback_to_second_provider_when_first_returns_500(stack: Stack, fake_llm: FakeLLMServer) -> None:
    first, second = f"a-{uid()}", f"b-{uid()}"
    fake_llm.fake.set(first, status=500)
    fake_llm.fake.set(second, content="from b", prompt_tokens=7, completion_tokens=3)
    service = LlmService(stack.db, ProviderManager(two_tier_config(fake_llm.api_base, first, second)))
    errors_before = metric("ains_llm_errors_total", {"provider": f"prov-{first}", "deployment": first})

    answer = await service.complete(CallContext(call_id=f"t:{uid()}", client_id=f"c-{uid()}"), "g", MESSAGES)

    assert (answer.content, answer.deployment_id, answer.provider) == ("from b", second, f"prov-{second}")
    assert len(fake_llm.fake.calls_for(first)) == 1 and len(fake_llm.fake.calls_for(second)) == 1
    assert answer.usage.total_tokens == 10
    await asyncio.sleep(0.2)  # litellm runs its callbacks in the background
    assert metric("ains_llm_errors_total", {"provider": f"prov-{first}", "deployment": first}) == errors_before + 1


async def test_fallback_when_first_provider_times_out(stack: Stack, fake_llm: FakeLLMServer) -> None:
    first, second = f"a-{uid()}", f"b-{uid()}"
    fake_llm.fake.set(first, delay_seconds=3.0)
    fake_llm.fake.set(second, content="fast")
    service = LlmService(stack.db, ProviderManager(two_tier_config(fake_llm.api_base, first, second, timeout=0.5)))
    started = time.monotonic()
    answer = await service.complete(CallContext(call_id=f"t:{uid()}", client_id=f"c-{uid()}"), "g", MESSAGES)
    assert answer.deployment_id == second and answer.content == "fast"
    assert time.monotonic() - started < 2.5


async def test_every_deployment_failing_is_a_failure_and_releases_the_reservation(
    stack: Stack, fake_llm: FakeLLMServer
) -> None:
    first, second = f"a-{uid()}", f"b-{uid()}"
    fake_llm.fake.set(first, status=500)
    fake_llm.fake.set(second, status=503)
    client = f"c-{uid()}"
    service = LlmService(stack.db, ProviderManager(two_tier_config(fake_llm.api_base, first, second)))
    with pytest.raises(LlmCallFailed) as failed:
        await service.complete(CallContext(call_id=f"t:{uid()}", client_id=client), "g", MESSAGES)
    assert not failed.value.timeout and "model group 'g' failed" in failed.value.message
    async with stack.db.session() as session:
        view = await budgets.get_budget(session, client)
    assert view.reserved_usd == 0 and view.spent_usd == 0


async def test_cooldown_skips_a_failing_deployment(stack: Stack, fake_llm: FakeLLMServer) -> None:
    first, second = f"a-{uid()}", f"b-{uid()}"
    fake_llm.fake.set(first, status=500)
    fake_llm.fake.set(second, content="ok")
    manager = ProviderManager(two_tier_config(fake_llm.api_base, first, second, allowed_fails=1, cooldown=60))
    service = LlmService(stack.db, manager)
    for _ in range(5):
        answer = await service.complete(CallContext(call_id=f"t:{uid()}", client_id=f"c-{uid()}"), "g", MESSAGES)
        assert answer.deployment_id == second
    # More than allowed_fails failures put the first deployment in cooldown: later calls never reach it.
    assert len(fake_llm.fake.calls_for(first)) == 2
    assert len(fake_llm.fake.calls_for(second)) == 5
    view = manager.view()
    states = {d.id: d.cooling_down for d in view.model_groups[0].deployments}
    assert states == {first: True, second: False}
    assert view.model_groups[0].fallback_order == [[first], [second]]


async def test_tokens_and_cost_are_recorded_per_call_task_agent_and_client(
    stack: Stack, fake_llm: FakeLLMServer
) -> None:
    first, second = f"a-{uid()}", f"b-{uid()}"
    fake_llm.fake.set(first, prompt_tokens=100, completion_tokens=50)
    client, task, agent = f"c-{uid()}", f"tsk-{uid()}", f"agent-{uid()}"
    service = LlmService(stack.db, ProviderManager(two_tier_config(fake_llm.api_base, first, second)))
    tokens_before = metric("ains_llm_tokens_total", {"provider": f"prov-{first}", "kind": "prompt"})
    cost_before = metric("ains_llm_cost_usd_total", {"provider": f"prov-{first}"})
    for attempt in (1, 2):
        ctx = CallContext(
            call_id=f"task:{task}:{attempt}", client_id=client, task_id=task, attempt=attempt, agent_id=agent
        )
        answer = await service.complete(ctx, "g", MESSAGES)
        # 100 * $0.001 + 50 * $0.002
        assert answer.usage.cost_usd == pytest.approx(0.2)
        assert (answer.usage.prompt_tokens, answer.usage.completion_tokens, answer.usage.total_tokens) == (100, 50, 150)

    async with stack.db.session() as session:
        rows = (await session.execute(select(LlmCall).where(LlmCall.task_id == task))).scalars().all()
        assert sorted((r.attempt, r.status, r.deployment_id, r.total_tokens) for r in rows) == [
            (1, "succeeded", first, 150),
            (2, "succeeded", first, 150),
        ]
        for group_by, kwargs in (
            ([UsageGroup.TASK], {"task_id": task}),
            ([UsageGroup.AGENT], {"agent_id": agent}),
            ([UsageGroup.DAY, UsageGroup.MODEL], {"client_id": client}),
        ):
            report = await usage_report(session, group_by=group_by, **kwargs)
            assert len(report.rows) == 1
            row = report.rows[0]
            assert (row.calls, row.prompt_tokens, row.completion_tokens, row.total_tokens) == (2, 200, 100, 300)
            assert row.cost_usd == pytest.approx(0.4)
        assert report.rows[0].model_group == "g" and report.rows[0].day is not None
        view = await budgets.get_budget(session, client)
        assert view.spent_usd == pytest.approx(0.4) and view.reserved_usd == 0
    assert LLM_TOKENS.labels(f"prov-{first}", "prompt") is not None
    assert metric("ains_llm_tokens_total", {"provider": f"prov-{first}", "kind": "prompt"}) == tokens_before + 200
    assert metric("ains_llm_cost_usd_total", {"provider": f"prov-{first}"}) == pytest.approx(cost_before + 0.4)
    assert LLM_COST is not None


async def test_budget_refuses_a_call_before_it_is_made(stack: Stack, fake_llm: FakeLLMServer) -> None:
    first, second = f"a-{uid()}", f"b-{uid()}"
    client = f"c-{uid()}"
    service = LlmService(stack.db, ProviderManager(two_tier_config(fake_llm.api_base, first, second)))
    async with stack.db.transaction() as session:
        await budgets.set_budget(session, client, BudgetSet(daily_limit_usd=0.01))
    with pytest.raises(BudgetExceeded) as refused:
        await service.complete(CallContext(call_id=f"t:{uid()}", client_id=client), "g", MESSAGES)
    message = refused.value.message
    assert f"daily LLM budget of client '{client}'" in message
    assert "limit $0.01" in message and "spent $0" in message
    assert fake_llm.fake.calls_for(first) == [] and fake_llm.fake.calls_for(second) == []
    async with stack.db.session() as session:
        row = (await session.execute(select(LlmCall).where(LlmCall.client_id == client))).scalar_one()
        assert row.status == "refused"


async def test_no_overspend_under_20_concurrent_calls(stack: Stack, fake_llm: FakeLLMServer) -> None:
    first, second = f"a-{uid()}", f"b-{uid()}"
    # Estimate per call: (len(prompt)//4 + 16) prompt tokens * $0.001 + 10 output tokens * $0.002.
    fake_llm.fake.set(first, prompt_tokens=20, completion_tokens=10, delay_seconds=0.2)
    client = f"c-{uid()}"
    manager = ProviderManager(two_tier_config(fake_llm.api_base, first, second))
    service = LlmService(stack.db, manager)
    estimate = manager.estimate_cost(manager.group("g"), "".join(m["content"] for m in MESSAGES))
    limit = round(estimate * 5.5, 6)  # room for 5 reservations at a time
    async with stack.db.transaction() as session:
        await budgets.set_budget(session, client, BudgetSet(daily_limit_usd=limit))

    async def one(i: int) -> str:
        try:
            await service.complete(CallContext(call_id=f"t:{client}:{i}", client_id=client), "g", MESSAGES)
        except BudgetExceeded:
            return "refused"
        return "ok"

    outcomes = await asyncio.gather(*(one(i) for i in range(20)))
    ok = outcomes.count("ok")
    assert 1 <= ok <= 5, outcomes
    assert len(fake_llm.fake.calls_for(first)) == ok  # refused calls never reached the provider
    async with stack.db.session() as session:
        spend = (await session.execute(select(ClientSpend).where(ClientSpend.client_id == client))).scalar_one()
    assert spend.spent_usd == pytest.approx(ok * 0.04)  # 20 * $0.001 + 10 * $0.002 each
    assert spend.spent_usd <= limit and spend.reserved_usd == pytest.approx(0)


async def test_a_retried_call_is_not_double_counted(stack: Stack, fake_llm: FakeLLMServer) -> None:
    first, second = f"a-{uid()}", f"b-{uid()}"
    fake_llm.fake.set(first, content="once", prompt_tokens=10, completion_tokens=10)
    client = f"c-{uid()}"
    service = LlmService(stack.db, ProviderManager(two_tier_config(fake_llm.api_base, first, second)))
    ctx = CallContext(call_id=f"task:tsk-{uid()}:1", client_id=client)
    a = await service.complete(ctx, "g", MESSAGES)
    b = await service.complete(ctx, "g", MESSAGES)  # e.g. the activity retried after its worker died
    assert a.content == b.content == "once"
    assert len(fake_llm.fake.calls_for(first)) == 1
    async with stack.db.session() as session:
        view = await budgets.get_budget(session, client)
    assert view.spent_usd == pytest.approx(0.03)


async def test_response_cache_per_client_with_hit_counter(stack: Stack, fake_llm: FakeLLMServer) -> None:
    first, second = f"a-{uid()}", f"b-{uid()}"
    fake_llm.fake.set(first, content="cached?")
    service = LlmService(
        stack.db, ProviderManager(two_tier_config(fake_llm.api_base, first, second)), InProcessCache(), 60
    )
    hits_before = LLM_CACHE_HITS.labels("g")._value.get()
    client = f"c-{uid()}"
    one = await service.complete(CallContext(call_id=f"t:{uid()}", client_id=client), "g", MESSAGES)
    two = await service.complete(CallContext(call_id=f"t:{uid()}", client_id=client), "g", MESSAGES)
    other = await service.complete(CallContext(call_id=f"t:{uid()}", client_id=f"c-{uid()}"), "g", MESSAGES)
    assert (one.cached, two.cached, other.cached) == (False, True, False)
    assert two.content == "cached?" and two.usage.cost_usd == 0
    assert len(fake_llm.fake.calls_for(first)) == 2  # the other client is never served from this cache
    assert LLM_CACHE_HITS.labels("g")._value.get() == hits_before + 1


async def test_redis_response_cache_is_shared_between_services(
    stack: Stack, fake_llm: FakeLLMServer, redis_url: str
) -> None:
    if not redis_url:
        pytest.skip("set AINS_TEST_REDIS_URL to test the Redis cache")
    from redis.asyncio import Redis

    from ains.core.llm.service import RedisCache

    first, second = f"a-{uid()}", f"b-{uid()}"
    fake_llm.fake.set(first, content="shared")
    redis = Redis.from_url(redis_url)
    try:
        config = two_tier_config(fake_llm.api_base, first, second)
        one = LlmService(stack.db, ProviderManager(config), RedisCache(redis), 60)
        two = LlmService(stack.db, ProviderManager(config), RedisCache(redis), 60)  # another worker
        client = f"c-{uid()}"
        a = await one.complete(CallContext(call_id=f"t:{uid()}", client_id=client), "g", MESSAGES)
        b = await two.complete(CallContext(call_id=f"t:{uid()}", client_id=client), "g", MESSAGES)
    finally:
        await redis.aclose()
    assert (a.cached, b.cached, b.content) == (False, True, "shared")
    assert len(fake_llm.fake.calls_for(first)) == 1
