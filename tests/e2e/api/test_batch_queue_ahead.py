"""A batch bigger than its agents' free slots queues ahead of its runs (core.composition.batch_queue), end to end.

Its tasks join the dispatch queue with no run; a hand-over starts each one's run with its assignment in the
input, so a queued task never routes on its own. Runs started delayed by an earlier version still get theirs by
SignalWithStart.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.service import RPCError, RPCStatusCode

from ains.core.composition.batch_queue import queue_ahead
from ains.core.platform.metrics import DOMAIN_REGISTRY
from ains.core.routing.dispatch import Dispatcher
from ains.core.tasks.service import workflow_input
from ains.models.contract import TASK_WORKFLOW_NAME, task_start_options, task_workflow_id
from ains.models.tables import Task, TaskAttempt, TaskWait
from ains.models.workflow_io import TaskWorkflowInput
from tests.support.counting_agent import CountingAgent, hold_slot, register_counting_agent, route_markers_and_signals
from tests.support.factories import task_row
from tests.support.stack import Stack, auth


async def _submit_batch(stack: Stack, key: str, tag: str, count: int, **extra: Any) -> list[str]:
    items = [
        {"type": "echo", "required_capabilities": [tag], "input": {"n": n}, "queue_timeout_seconds": 120, **extra}
        for n in range(count)
    ]
    response = await stack.http.post("/v1/tasks/batch", headers=auth(key), json={"tasks": items})
    assert response.status_code == 202, response.text
    return [task["id"] for task in response.json()["tasks"]]


async def _running_on(stack: Stack, agent_id: str) -> int:
    async with stack.db.session() as session:
        count = select(func.count()).where(TaskAttempt.agent_id == agent_id, TaskAttempt.status == "running")
        return int((await session.execute(count)).scalar_one())


async def _queued_without_run(
    stack: Stack, client_id: str, tag: str, prefix: str, count: int
) -> list[TaskWorkflowInput]:
    """Tasks written and queued ahead as a batch page would be, without the batch activity (so no run is started
    and no free slot is handed out): what a worker that died after queueing them leaves behind."""
    task_ids = [f"{prefix}-{uuid.uuid4().hex[:12]}" for _ in range(count)]
    rows = [task_row(task_id, [tag], client_id=client_id) for task_id in task_ids]
    for row in rows:
        row.queue_timeout_seconds = 120
    async with stack.db.transaction() as session:
        session.add_all(rows)
    async with stack.db.session() as session:
        stored = [await session.get(Task, task_id) for task_id in task_ids]
    inputs = [workflow_input(row, stack.settings) for row in stored if row is not None]
    ahead = await queue_ahead(stack.db, inputs, {})
    assert ahead.task_ids == set(task_ids) and ahead.free_agent_ids == []
    return inputs


async def _free_slot_of(stack: Stack, task_id: str) -> None:
    """The task's attempt stops holding its slot, as when its agent answers (nothing is handed over yet)."""
    async with stack.db.transaction() as session:
        attempt = await session.get(TaskAttempt, (task_id, 1))
        assert attempt is not None
        attempt.status = "cancelled"


async def test_a_batch_bigger_than_the_free_slots_drains_in_order_without_routing_each_task(stack: Stack) -> None:
    async with CountingAgent(delay=0.1) as agent:
        agent_id, tag = await register_counting_agent(stack, agent.url, max_concurrency=2)
        key, _ = await stack.new_key()
        ids = await _submit_batch(stack, key, tag, 12)
        for task_id in ids:
            done = await stack.wait_for(key, task_id, timeout=60)
            assert done["status"] == "succeeded", done
        assert agent.most_at_once <= 2, "never over the agent's limit"
        # One client, one priority: first in, first out (two calls at a time may reach the agent either way).
        assert sorted(agent.started) == sorted(ids)
        assert all(abs(agent.started.index(task_id) - n) <= 1 for n, task_id in enumerate(ids)), agent.started
        last = ids[-1]
        receipt = (await stack.http.get(f"/v1/tasks/{last}/routing", headers=auth(key))).json()["receipts"][0]
        assert receipt["outcome"] == "assigned" and receipt["reason"].startswith("handed over"), receipt
        workflow_id = (await stack.http.get(f"/v1/tasks/{last}", headers=auth(key))).json()["workflow_id"]
        routes, signals = await route_markers_and_signals(stack, workflow_id)
        assert (routes, signals) == (0, 0), "its run was started by its hand-over and routed nothing itself"
        client = await stack.temporal()
        events = [e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()]
        assert [e.event_type for e in events[:3]] == [
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        ]
        started = json.loads(events[0].workflow_execution_started_event_attributes.input.payloads[0].data)
        assert started["assignment"]["agent_id"] == agent_id and started["assignment"]["attempt"] == 1, started
        assert started["queued"] is True, "the slot came in the run's input"


async def test_a_queued_ahead_task_is_cancelled_at_once_and_the_rest_time_out_in_the_queue(stack: Stack) -> None:
    async with CountingAgent(delay=0.1) as agent:
        agent_id, tag = await register_counting_agent(stack, agent.url, max_concurrency=1)
        key, _ = await stack.new_key()
        blocker = await hold_slot(stack, key, tag, 30)
        submitted = time.monotonic()
        cancelled, *rest = await _submit_batch(stack, key, tag, 3, queue_timeout_seconds=6)
        await stack.wait_for(key, rest[-1], {"routing"})
        view = (await stack.http.get(f"/v1/tasks/{rest[-1]}", headers=auth(key))).json()
        assert view["waiting"]["position"] == 2 and view["waiting"]["waiting_total"] == 3, view["waiting"]
        client = await stack.temporal()
        with pytest.raises(RPCError) as missing:
            await client.get_workflow_handle(view["workflow_id"]).describe()
        assert missing.value.status is RPCStatusCode.NOT_FOUND, "a queued task has no run while it waits"
        response = await stack.http.post(f"/v1/tasks/{cancelled}/cancel", headers=auth(key))
        assert response.status_code == 202, response.text
        assert (await stack.wait_for(key, cancelled, timeout=10))["status"] == "cancelled"
        assert time.monotonic() - submitted < 6, "a queued task without a run is cancelled at once"
        expired_before = DOMAIN_REGISTRY.get_sample_value("ains_dispatch_repairs_total", {"kind": "expired"}) or 0.0
        for task_id in rest:
            done = await stack.wait_for(key, task_id, timeout=30)
            assert done["status"] == "failed" and done["error_code"] == "no_agent_available", done
        assert time.monotonic() - submitted >= 6, "they waited out their queue timeout"
        expired = DOMAIN_REGISTRY.get_sample_value("ains_dispatch_repairs_total", {"kind": "expired"}) or 0.0
        assert expired - expired_before >= len(rest), "the reconciler started their runs when their time ran out"
        async with stack.db.session() as session:
            waiting = (await session.execute(select(TaskWait.task_id).where(TaskWait.task_id.in_(rest)))).all()
        assert waiting == [], "nothing is left in the queue"
        assert await _running_on(stack, agent_id) == 1 and agent.in_flight == 1, "the blocker keeps its slot"
        assert agent.started == [blocker]
        await stack.http.post(f"/v1/tasks/{blocker}/cancel", headers=auth(key))


async def test_a_queued_task_whose_run_never_started_is_started_by_its_hand_over(stack: Stack) -> None:
    """A hand-over whose worker died between reserving the slot and starting the run: the reconciler's re-send
    of the reservation starts it, and the next hand-over starts the other task's run."""
    async with CountingAgent(delay=0.1) as agent:
        agent_id, tag = await register_counting_agent(stack, agent.url, max_concurrency=1)
        key, client_id = await stack.new_key()
        blocker = await hold_slot(stack, key, tag, 60)
        task_ids = [params.task_id for params in await _queued_without_run(stack, client_id, tag, "orphan", 2)]
        await _free_slot_of(stack, blocker)
        handed = await Dispatcher(stack.db, None, stack.settings).reserve([agent_id])
        assert [h.task_id for h in handed] == task_ids[:1] and handed[0].start is not None
        for task_id in task_ids:
            done = await stack.wait_for(key, task_id, timeout=40)
            assert done["status"] == "succeeded", done
        assert agent.started[1:] == task_ids
        assert await _running_on(stack, agent_id) == 0, "no slot leaked (the blocker's was freed above)"
        await stack.http.post(f"/v1/tasks/{blocker}/cancel", headers=auth(key))


async def test_with_queue_ahead_turned_off_each_batch_task_starts_at_once_and_routes_itself(stack: Stack) -> None:
    stack.settings.batch_queue_ahead = False  # the worker runs in this process, on this very Settings object
    try:
        async with CountingAgent(delay=0.1) as agent:
            _, tag = await register_counting_agent(stack, agent.url, max_concurrency=2)
            key, _ = await stack.new_key()
            ids = await _submit_batch(stack, key, tag, 6)
            for task_id in ids:
                assert (await stack.wait_for(key, task_id, timeout=60))["status"] == "succeeded"
            assert agent.most_at_once <= 2
            workflow_id = (await stack.http.get(f"/v1/tasks/{ids[-1]}", headers=auth(key))).json()["workflow_id"]
            routes, _ = await route_markers_and_signals(stack, workflow_id)
            assert routes == 1, "its run started with the batch and routed (then waited for its hand-over)"
    finally:
        stack.settings.batch_queue_ahead = True


async def test_a_run_started_delayed_by_an_earlier_version_is_started_by_its_hand_over(stack: Stack) -> None:
    """Before migration 0011 a queued task's run was started delayed by its queue timeout. After an upgrade its
    hand-over finds that run and ends the delay by SignalWithStart: the task runs now, not when the delay ends."""
    async with CountingAgent(delay=0.1) as agent:
        agent_id, tag = await register_counting_agent(stack, agent.url, max_concurrency=1)
        key, client_id = await stack.new_key()
        blocker = await hold_slot(stack, key, tag, 60)
        (params,) = await _queued_without_run(stack, client_id, tag, "delayed", 1)
        task_id = params.task_id
        client = await stack.temporal()
        delayed = params.model_copy(update={"queued": True})  # as the earlier version started it
        await client.start_workflow(
            TASK_WORKFLOW_NAME, delayed, start_delay=timedelta(seconds=120), **task_start_options(delayed)
        )
        await _free_slot_of(stack, blocker)
        started = time.monotonic()
        handed = await Dispatcher(stack.db, client, stack.settings).release([agent_id], source="test")
        assert [h.task_id for h in handed] == [task_id]
        done = await stack.wait_for(key, task_id, timeout=30)
        assert done["status"] == "succeeded", done
        assert time.monotonic() - started < 20, "the hand-over ended the start delay"
        routes, signals = await route_markers_and_signals(stack, task_workflow_id(task_id))
        assert (routes, signals) == (0, 1), "the assignment arrived as a signal to the existing run"
        assert await _running_on(stack, agent_id) == 0
        await stack.http.post(f"/v1/tasks/{blocker}/cancel", headers=auth(key))
