"""Hand-over dispatch end to end: real Temporal, real workers, real agents on 127.0.0.1.

A task that finds its agents busy waits for a signal; the slot an attempt frees is handed to the next task
in dispatch order; the reconciler repairs what a crash between reserving and signalling leaves behind.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from ains.core.platform.metrics import DOMAIN_REGISTRY
from ains.core.routing.dispatch import Dispatcher
from ains.core.tasks.service import record_task
from ains.models.tables import Task, TaskAttempt, TaskWait
from ains.models.tasks import TaskCreate
from ains.models.workflow_io import SlotAssignment
from tests.support.counting_agent import CountingAgent, hold_slot, register_counting_agent, route_markers_and_signals
from tests.support.stack import Stack, auth


async def _submit_all(stack: Stack, key: str, bodies: list[dict[str, Any]]) -> list[str]:
    ids = []
    for body in bodies:
        ids.append((await stack.submit(key, **body))["id"])
    return ids


async def test_freed_slots_go_by_priority_and_a_woken_task_never_routes_again(stack: Stack) -> None:
    async with CountingAgent(delay=0.3) as agent:
        _, tag = await register_counting_agent(stack, agent.url, max_concurrency=1)
        key, _ = await stack.new_key()
        await hold_slot(stack, key, tag, 6)
        queued = await _submit_all(
            stack,
            key,
            [
                {"required_capabilities": [tag], "priority": p, "input": {"p": p}, "queue_timeout_seconds": 120}
                for p in (2, 9, 5, 7)
            ],
        )
        for task_id in queued:
            await stack.wait_for(key, task_id, {"routing"})
        view = (await stack.http.get(f"/v1/tasks/{queued[0]}", headers=auth(key))).json()
        waiting = view["waiting"]
        assert waiting["position"] == 3 and waiting["waiting_total"] == 4, waiting
        assert waiting["capable_agents"] == 1 and waiting["agents"][0]["running"] == 1
        for task_id in queued:
            done = await stack.wait_for(key, task_id, timeout=30)
            assert done["status"] == "succeeded", done
            assert done["waiting"] is None
        assert agent.started[1:] == [queued[1], queued[3], queued[2], queued[0]], "priority 9, 7, 5, then 2"
        assert agent.most_at_once == 1
        receipt = (await stack.http.get(f"/v1/tasks/{queued[1]}/routing", headers=auth(key))).json()["receipts"][0]
        assert receipt["outcome"] == "assigned" and receipt["reason"].startswith("handed over"), receipt
        view = (await stack.http.get(f"/v1/tasks/{queued[1]}", headers=auth(key))).json()
        routes, signals = await route_markers_and_signals(stack, view["workflow_id"])
        assert (routes, signals) == (1, 1), "woken by its hand-over, it called the agent without routing again"


async def test_a_light_client_is_not_held_back_by_a_heavy_ones_backlog(stack: Stack) -> None:
    async with CountingAgent(delay=0.15) as agent:
        _, tag = await register_counting_agent(stack, agent.url, max_concurrency=1)
        heavy, _ = await stack.new_key()
        light, _ = await stack.new_key()
        await hold_slot(stack, heavy, tag, 4)
        backlog = await asyncio.gather(
            *(stack.submit(heavy, required_capabilities=[tag], queue_timeout_seconds=120) for _ in range(16))
        )
        await stack.wait_for(heavy, backlog[-1]["id"], {"routing"})
        light_from = time.monotonic()
        mine = [
            await stack.submit(light, required_capabilities=[tag], queue_timeout_seconds=120, input={"n": n})
            for n in range(3)
        ]
        for task in mine:
            done = await stack.wait_for(light, task["id"], timeout=30)
            assert done["status"] == "succeeded", done
        light_ids = {t["id"] for t in mine}
        light_last = max(agent.started_at[t] for t in light_ids)
        heavy_meanwhile = [
            t for t in agent.started if t not in light_ids and light_from < agent.started_at[t] < light_last
        ]
        # One turn each: after the light client joined, at most one heavy task per light task (plus the one
        # that may have been handed over as it joined) ran before its last task.
        assert len(heavy_meanwhile) <= len(mine) + 1, (len(heavy_meanwhile), agent.started)


async def test_cancelling_a_waiting_task_frees_nothing_it_did_not_hold(stack: Stack) -> None:
    async with CountingAgent(delay=0.1) as agent:
        agent_id, tag = await register_counting_agent(stack, agent.url, max_concurrency=1)
        key, _ = await stack.new_key()
        await hold_slot(stack, key, tag, 8)
        waiter = (await stack.submit(key, required_capabilities=[tag], queue_timeout_seconds=120))["id"]
        later = (await stack.submit(key, required_capabilities=[tag], queue_timeout_seconds=120))["id"]
        await stack.wait_for(key, later, {"routing"})
        cancel = await stack.http.post(f"/v1/tasks/{waiter}/cancel", headers=auth(key))
        assert cancel.status_code == 202, cancel.text
        await stack.wait_for(key, waiter, {"cancelled"})
        async with stack.db.session() as session:
            running = (
                await session.execute(
                    select(func.count()).where(TaskAttempt.agent_id == agent_id, TaskAttempt.status == "running")
                )
            ).scalar_one()
            queued = (await session.execute(select(TaskWait.task_id).where(TaskWait.task_id == waiter))).first()
        assert running == 1 and agent.in_flight == 1, "the blocker still holds the only slot"
        assert queued is None, "the cancelled task left the queue"
        assert (await stack.wait_for(key, later))["status"] == "succeeded"
        assert agent.most_at_once == 1 and waiter not in agent.started


async def test_a_task_whose_run_was_never_started_is_started_by_the_reconciler(stack: Stack) -> None:
    """The state an API process killed between writing a task's row and starting its run leaves behind: the task
    is pending, and without an idempotency key no client retry would ever start it. The reconciler does."""
    async with CountingAgent(delay=0.05) as agent:
        _, tag = await register_counting_agent(stack, agent.url, max_concurrency=2)
        key, client_id = await stack.new_key()
        spec = TaskCreate(type="echo", required_capabilities=[tag], input={"orphan": True})
        task, created = await record_task(stack.db, stack.settings, client_id, spec)  # the row, and no start
        assert created and task.status == "pending"
        before = DOMAIN_REGISTRY.get_sample_value("ains_dispatch_repairs_total", {"kind": "unstarted"}) or 0.0
        done = await stack.wait_for(key, task.id, timeout=45)
        assert done["status"] == "succeeded" and done["result"] == {"output": {"orphan": True}}, done
        assert agent.started.count(task.id) == 1, "called once"
        after = DOMAIN_REGISTRY.get_sample_value("ains_dispatch_repairs_total", {"kind": "unstarted"}) or 0.0
        assert after - before >= 1


async def test_a_task_whose_start_temporal_refuses_does_not_hold_back_the_ones_behind_it(stack: Stack) -> None:
    """The reconciler's sweep starts unstarted tasks oldest first; one Temporal refuses to start (here: a type over
    the 2 KB a search attribute may hold, written past the API's validation) is logged and passed over."""
    if stack.backend != "sqlite":
        pytest.skip("the refused row is written past its column's length, which only SQLite allows")
    async with CountingAgent(delay=0.05) as agent:
        _, tag = await register_counting_agent(stack, agent.url, max_concurrency=2)
        key, client_id = await stack.new_key()
        refused, _ = await record_task(stack.db, stack.settings, client_id, TaskCreate(type="echo", input={"n": 1}))
        try:
            async with stack.db.transaction() as session:
                await session.execute(update(Task).where(Task.id == refused.id).values(type="t" * 3000))
            spec = TaskCreate(type="echo", required_capabilities=[tag], input={"behind": True})
            behind, _ = await record_task(stack.db, stack.settings, client_id, spec)  # written after it, no start
            done = await stack.wait_for(key, behind.id, timeout=45)
            assert done["status"] == "succeeded" and done["result"] == {"output": {"behind": True}}, done
            async with stack.db.session() as session:
                assert (await session.get(Task, refused.id)).status == "pending"  # type: ignore[union-attr]
        finally:
            async with stack.db.transaction() as session:
                await session.execute(delete(Task).where(Task.id == refused.id))


async def test_a_reservation_whose_signal_was_lost_is_repaired_by_the_reconciler(stack: Stack) -> None:
    """The state a worker killed between committing a hand-over and signalling it leaves behind: the slot is
    reserved (handover_pending) and the task was never told. The reconciler re-sends the assignment."""
    async with CountingAgent(delay=0.1) as agent:
        agent_id, tag = await register_counting_agent(stack, agent.url, max_concurrency=1)
        key, _ = await stack.new_key()
        blocker = await hold_slot(stack, key, tag, 60)
        waiter = (await stack.submit(key, required_capabilities=[tag], queue_timeout_seconds=120, input={"w": 1}))["id"]
        await stack.wait_for(key, waiter, {"routing"})
        # Free the slot the way the agent finishing would, but reserve it without telling anyone.
        async with stack.db.transaction() as session:
            attempt = await session.get(TaskAttempt, (blocker, 1))
            assert attempt is not None
            attempt.status = "cancelled"
        handed = await Dispatcher(stack.db, None, stack.settings).reserve([agent_id])
        assert [h.task_id for h in handed] == [waiter]
        started = time.monotonic()
        done = await stack.wait_for(key, waiter, timeout=30)
        assert done["status"] == "succeeded" and done["result"] == {"output": {"w": 1}}, done
        assert time.monotonic() - started < 15, "repaired within a few reconciler rounds"
        async with stack.db.session() as session:
            row = await session.get(TaskAttempt, (waiter, 1))
        assert row is not None and row.handover_pending is False
        await stack.http.post(f"/v1/tasks/{blocker}/cancel", headers=auth(key))


async def test_a_reservation_for_a_task_that_is_gone_is_released(stack: Stack) -> None:
    async with CountingAgent(delay=0.1) as agent:
        agent_id, tag = await register_counting_agent(stack, agent.url, max_concurrency=1)
        key, _ = await stack.new_key()
        blocker = await hold_slot(stack, key, tag, 60)
        doomed = (await stack.submit(key, required_capabilities=[tag], queue_timeout_seconds=120))["id"]
        await stack.wait_for(key, doomed, {"routing"})
        client = await stack.temporal()
        await client.get_workflow_handle(f"task-{doomed}").terminate("test: the task's workflow is gone")
        next_in_line = (
            await stack.submit(key, required_capabilities=[tag], queue_timeout_seconds=120, input={"n": 2})
        )["id"]
        await stack.wait_for(key, next_in_line, {"routing"})
        async with stack.db.transaction() as session:
            attempt = await session.get(TaskAttempt, (blocker, 1))
            assert attempt is not None
            attempt.status = "cancelled"
        handed = await Dispatcher(stack.db, None, stack.settings).reserve([agent_id])
        assert [h.task_id for h in handed] == [doomed], "the terminated task was first in line"
        done = await stack.wait_for(key, next_in_line, timeout=30)
        assert done["status"] == "succeeded", done
        async with stack.db.session() as session:
            orphan = await session.get(TaskAttempt, (doomed, 1))
        assert orphan is not None and orphan.status == "cancelled", "the orphaned slot was given back"
        await stack.http.post(f"/v1/tasks/{blocker}/cancel", headers=auth(key))


async def test_two_workers_never_put_an_agent_over_its_limit_and_survive_a_sigkill(stack: Stack) -> None:
    """A second worker process dispatches the same backlog; it is SIGKILLed halfway and the rest drains.

    On Postgres, where several workers really do decide at once (SQLite runs one writer at a time)."""
    if stack.backend != "postgres":
        pytest.skip("concurrent dispatchers apply to the Postgres registry")
    async with CountingAgent(delay=0.2) as agent:
        agent_id, tag = await register_counting_agent(stack, agent.url, max_concurrency=3)
        key, _ = await stack.new_key()
        process = stack.spawn_worker_process()
        await asyncio.sleep(1.5)
        tasks = await asyncio.gather(
            *(stack.submit(key, required_capabilities=[tag], queue_timeout_seconds=120) for _ in range(30))
        )
        while len(agent.started) < 12:  # noqa: ASYNC110 (polling a plain counter of the agent)
            await asyncio.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait()
        for task in tasks:
            done = await stack.wait_for(key, task["id"], timeout=90)
            assert done["status"] == "succeeded", done
        assert agent.most_at_once <= 3, f"the agent held {agent.most_at_once} calls at once; its limit is 3"
        async with stack.db.session() as session:
            running = (
                await session.execute(
                    select(func.count()).where(TaskAttempt.agent_id == agent_id, TaskAttempt.status == "running")
                )
            ).scalar_one()
        assert running == 0, "no slot leaked"


async def test_an_assignment_re_sent_during_the_call_is_not_reused_by_the_next_attempt(stack: Stack) -> None:
    """The reconciler re-sends an assignment whose delivery it could not confirm (a worker killed after the
    signal, before clearing the flag); arriving while the attempt's call runs, it must not stand in for the
    next attempt's routing."""
    async with CountingAgent(delay=0.1) as agent:
        agent_id, tag = await register_counting_agent(stack, agent.url, max_concurrency=2)
        key, _ = await stack.new_key()
        task = await stack.submit(
            key, required_capabilities=[tag], max_attempts=2, input={"delay_seconds": 2, "fail": True}
        )
        await stack.wait_for(key, task["id"], {"running"})
        client = await stack.temporal()
        stale = SlotAssignment(attempt=1, agent_id=agent_id, endpoint_url=agent.url, reason="re-sent (test)")
        await client.get_workflow_handle(task["workflow_id"]).signal("slot_assigned", stale)
        done = await stack.wait_for(key, task["id"], timeout=30)
        assert done["status"] == "failed" and done["attempts"] == 2, done
        receipts = (await stack.http.get(f"/v1/tasks/{task['id']}/routing", headers=auth(key))).json()["receipts"]
        assert [r["attempt"] for r in receipts] == [1, 2], "the second attempt was routed, not handed the stale slot"
        assert receipts[1]["outcome"] == "assigned" and "re-sent" not in receipts[1]["reason"], receipts[1]
        async with stack.db.session() as session:
            second = await session.get(TaskAttempt, (task["id"], 2))
        assert second is not None and second.status != "running", "the second attempt held and released its slot"
