"""The Python client against the real stack: every resource, pagination, errors, events, wait, and retries
after a real 503 (from a proxy that lets the API act, then loses its answer) without a second task."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from ains.models.agents import AgentStatus
from ains.models.keys import Scope
from ains.models.tables import Task
from ains.models.tasks import TaskStatus
from ains.sdk import AsyncClient, Client
from ains.sdk.errors import Conflict, NotFound, ServiceUnavailable, ValidationFailed, WaitTimeout
from ains.sdk.transport import RetryPolicy
from tests.support.flaky_proxy import FlakyProxy
from tests.support.servers import RunningServer, serve
from tests.support.stack import Stack


@pytest.fixture
async def proxy(stack: Stack) -> AsyncIterator[tuple[FlakyProxy, RunningServer]]:
    app = FlakyProxy(stack.api_url)
    server = await serve(app)
    try:
        yield app, server
    finally:
        await server.stop()


async def _client(stack: Stack, key: str | None = None, url: str | None = None) -> AsyncClient:
    return AsyncClient(url or stack.api_url, key or (await stack.new_key())[0])


async def test_task_submit_events_wait_get_routing_and_cancel_conflict(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    async with await _client(stack) as ains:
        accepted = await ains.tasks.submit(
            {"type": "echo", "input": {"v": 1, "delay_seconds": 1.5}, "required_capabilities": [tag]}
        )
        assert accepted.created
        seen = [view.status async for view in ains.tasks.events(accepted.id)]
        assert seen[-1] == TaskStatus.SUCCEEDED
        assert TaskStatus.RUNNING in seen, seen  # the 1.5 s call is seen running, as it happens
        assert seen.count(TaskStatus.RUNNING) <= 2, "one event per change, not one per poll (6 polls while running)"
        done = await ains.tasks.wait(accepted.id, timeout=5)  # already final: the stream's first event
        assert done.result == {"output": {"v": 1, "delay_seconds": 1.5}}
        assert (await ains.tasks.get(accepted.id)).status == TaskStatus.SUCCEEDED
        receipts = await ains.tasks.routing(accepted.id)
        assert receipts.receipts[0].winner_agent_id == done.assigned_agent_id
        with pytest.raises(Conflict) as conflict:
            await ains.tasks.cancel(accepted.id)
        assert conflict.value.status_code == 409 and "already" in conflict.value.message


async def test_wait_times_out_with_the_last_state_and_cancel_reaches_the_task(stack: Stack) -> None:
    _, tag = await stack.register_agent("/hang")
    async with await _client(stack) as ains:
        task = await ains.tasks.submit({"type": "echo", "required_capabilities": [tag], "max_attempts": 1})
        started = time.monotonic()
        with pytest.raises(WaitTimeout) as timeout:
            await ains.tasks.wait(task.id, timeout=1.5)
        assert 1.4 <= time.monotonic() - started < 4
        assert timeout.value.last is not None and not timeout.value.last.status.is_final
        await ains.tasks.cancel(task.id)
        assert (await ains.tasks.wait(task.id, timeout=20)).status == TaskStatus.CANCELLED


async def test_errors_carry_the_api_code_and_details(stack: Stack) -> None:
    async with await _client(stack) as ains:
        with pytest.raises(NotFound) as missing:
            await ains.tasks.get("tsk_does_not_exist")
        assert missing.value.code == "not_found" and "tsk_does_not_exist" in missing.value.message
        with pytest.raises(NotFound):
            [view async for view in ains.tasks.events("tsk_does_not_exist")]
        with pytest.raises(ValidationFailed) as invalid:
            await ains.agents.register(
                {
                    "id": "metadata-agent",
                    "display_name": "x",
                    "endpoint_url": "http://169.254.169.254/run",
                    "capabilities": [{"tag": "echo"}],
                }
            )
        assert invalid.value.status_code == 422 and invalid.value.code == "unsafe_url"


async def test_pagination_iterates_every_task_once_newest_first(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    async with await _client(stack) as ains:
        ids = [
            (await ains.tasks.submit({"type": "echo", "input": {"i": i}, "required_capabilities": [tag]})).id
            for i in range(5)
        ]
        first = await ains.tasks.list(limit=2)
        assert len(first.items) == 2 and first.next_cursor
        listed = [task.id async for task in ains.tasks.iter(limit=2)]
        assert listed == list(reversed(ids))
        for task_id in ids:
            await ains.tasks.wait(task_id, timeout=30)
        succeeded = [t.id async for t in ains.tasks.iter(status="succeeded", limit=3)]
        assert sorted(succeeded) == sorted(ids)


async def test_retried_submit_after_a_503_makes_one_task(stack: Stack, proxy: tuple[FlakyProxy, RunningServer]) -> None:
    flaky, server = proxy
    _, tag = await stack.register_agent("/run")
    key, client_id = await stack.new_key()
    async with AsyncClient(server.url, key, retry=RetryPolicy(backoff_seconds=0.05)) as ains:
        flaky.fail_next("POST", "/v1/tasks", 503, forward=True)  # the API accepts it; the answer is lost
        accepted = await ains.tasks.submit({"type": "echo", "input": {"once": True}, "required_capabilities": [tag]})
        assert flaky.seen[("POST", "/v1/tasks")] == 2, "the 503 was retried"
        assert accepted.created is False, "the retry found the task the first request made"
        done = await ains.tasks.wait(accepted.id, timeout=30)
        assert done.status == TaskStatus.SUCCEEDED

        flaky.fail_next("POST", "/v1/tasks/batch", 503, forward=True)
        batch = await ains.batches.submit({"tasks": [{"type": "echo", "required_capabilities": [tag]}] * 3})
        assert [item.created for item in batch.tasks] == [False] * 3

        flaky.fail_next("POST", "/v1/task-chains", 503, forward=True)
        chain = await ains.chains.create({"steps": [{"name": "a", "type": "echo", "required_capabilities": [tag]}]})
        assert (await ains.chains.wait(chain.id, timeout=30)).status == "succeeded"

        # 429 with Retry-After: 1 is honoured (the request reaches the API only after the wait).
        flaky.fail_next("GET", f"/v1/tasks/{accepted.id}", 429, forward=False, retry_after="1")
        started = time.monotonic()
        assert (await ains.tasks.get(accepted.id)).id == accepted.id
        assert time.monotonic() - started >= 1.0

        for _ in range(5):  # more 503s than retries: the error reaches the caller, with the API's shape
            flaky.fail_next("GET", f"/v1/tasks/{accepted.id}", 503, forward=False, retry_after="0")
        with pytest.raises(ServiceUnavailable) as down:
            await ains.tasks.get(accepted.id)
        assert down.value.code == "unavailable"
        flaky.failures.clear()
    async with stack.db.session() as session:
        count = (await session.execute(select(func.count()).where(Task.client_id == client_id))).scalar_one()
    assert count == 1 + 3 + 1, "one task per logical submission (task, 3 batch items, one chain step)"


async def test_every_resource(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    async with AsyncClient(stack.api_url, stack.admin_key) as admin, await _client(stack) as ains:
        # templates, plans, chains
        template = await ains.templates.create(
            {"name": "shout", "task_type": "uppercase", "defaults": {"required_capabilities": [tag]}}
        )
        assert (await ains.templates.get(template.id)).name == "shout"
        assert template.id in {t.id for t in await ains.templates.list()}
        plan = await ains.plans.create(
            {
                "steps": [
                    {"name": "a", "type": "echo", "input": {"text": "hi"}, "required_capabilities": [tag]},
                    {
                        "name": "b",
                        "type": "uppercase",
                        "input": {"text": {"$ref": "steps.a.output.text"}},
                        "required_capabilities": [tag],
                        "depends_on": ["a"],
                    },
                ]
            }
        )
        finished = await ains.plans.wait(plan.id, timeout=30)
        assert finished.status == "succeeded" and finished.progress == "2/2", finished.steps
        assert {s.name: s.result for s in finished.steps}["b"] == {"output": {"text": "HI"}}
        from_template = await ains.tasks.run({"template_id": template.id, "input": {"text": "x"}}, timeout=30)
        assert from_template.result == {"output": {"text": "X"}}
        await ains.templates.delete(template.id)
        with pytest.raises(NotFound):
            await ains.templates.get(template.id)

        # schedules
        schedule = await ains.schedules.create(
            {
                "name": "sdk",
                "interval_seconds": 3600,
                "paused": True,
                "target": {"kind": "task", "task": {"type": "echo", "required_capabilities": [tag]}},
            }
        )
        assert [s.id async for s in ains.schedules.iter(limit=1)] == [schedule.id]
        assert (await ains.schedules.resume(schedule.id, note="go")).paused is False
        assert (await ains.schedules.pause(schedule.id)).paused is True
        await ains.schedules.trigger(schedule.id)
        updated = await ains.schedules.update(schedule.id, {"name": "renamed"})
        assert updated.name == "renamed" and updated.interval_seconds == 3600
        await ains.schedules.delete(schedule.id)

        # agents, trust
        agent = await admin.agents.register(
            {
                "id": f"sdk-{tag}",
                "display_name": "sdk agent",
                "endpoint_url": f"{stack.demo_url}/run",
                "capabilities": [{"tag": tag, "version": "2.0"}],
            }
        )
        assert (await admin.agents.get(agent.id)).capabilities[0].version == "2.0"
        assert (await admin.agents.update(agent.id, {"max_concurrency": 3})).max_concurrency == 3
        assert (await admin.agents.heartbeat(agent.id)).last_heartbeat_at is not None
        tagged = [a.id async for a in admin.agents.iter(tag=[tag], limit=1)]
        assert agent.id in tagged and len(tagged) == 2
        assert (await admin.agents.set_status(agent.id, AgentStatus.UNAVAILABLE)).status == AgentStatus.UNAVAILABLE
        record = await admin.trust.override(agent.id, {"score": 0.8, "reason": "vetted by the sdk test"})
        assert record.score_after == 0.8
        assert [r.event_type async for r in admin.trust.history(agent.id, limit=1)] == ["override"]
        board = await admin.trust.leaderboard(tag=tag)
        assert agent.id in [e.agent_id for e in board.entries]
        await admin.agents.deregister(agent.id)
        with pytest.raises(NotFound):
            await admin.agents.get(agent.id)

        # keys
        created = await admin.keys.create({"client_id": "sdk-keys", "scopes": [Scope.TASKS_READ]})
        assert created.key.startswith("ains_")
        assert created.id in {k.id for k in await admin.keys.list(client_id="sdk-keys")}
        assert (await admin.keys.revoke(created.id)).revoked_at is not None

        # webhooks
        hook = await ains.webhooks.create({"url": "http://127.0.0.1:9/hook", "event_types": ["task.failed"]})
        assert hook.secret and (await ains.webhooks.get(hook.id)).url == hook.url
        assert [w.id async for w in ains.webhooks.iter()] == [hook.id]
        assert (await ains.webhooks.deliveries(status="dead")).items == []
        await ains.webhooks.delete(hook.id)

        # usage, budgets, audit
        report = await ains.usage.report(group_by=["day"])
        assert report.rows == []
        budget = await admin.usage.set_budget("sdk-budget", {"daily_limit_usd": 2})
        assert budget.daily_limit_usd == 2
        await admin.usage.delete_budget("sdk-budget")
        since = datetime.now(UTC) - timedelta(minutes=5)
        entries = [e async for e in admin.audit.iter(route="/v1/agents/{agent_id}", since=since, limit=2)]
        assert {e.method for e in entries} >= {"PATCH", "DELETE"}


async def test_sync_client_in_a_plain_thread(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()

    def script() -> tuple[str, list[str], list[str]]:
        with Client(stack.api_url, key) as ains:
            task = ains.tasks.run({"type": "uppercase", "input": {"text": "ok"}, "required_capabilities": [tag]})
            statuses = [v.status.value for v in ains.tasks.events(task.id)]
            ids = [t.id for t in ains.tasks.iter(limit=1)]
            return task.status.value, statuses, ids

    status, statuses, ids = await asyncio.to_thread(script)
    assert status == "succeeded" and statuses == ["succeeded"] and len(ids) == 1
