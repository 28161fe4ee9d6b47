"""End to end through the real API, Temporal dev server, workers and HTTP demo agent."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType

from ains.models.contract import ORCHESTRATION_QUEUE
from ains.models.tables import TaskAttempt, TrustRecord
from tests.support.stack import Stack, auth


async def test_task_succeeds_and_trust_rises_by_002_with_a_record(stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    accepted = await stack.submit(
        key, type="uppercase", input={"text": "hello"}, required_capabilities=[tag], priority=7
    )
    assert accepted["created"] is True
    assert accepted["temporal_ui_url"].endswith(
        f"/namespaces/{stack.settings.temporal_namespace}/workflows/task-{accepted['id']}"
    )

    task = await stack.wait_for(key, accepted["id"])
    assert task["status"] == "succeeded", task
    assert task["result"] == {"output": {"text": "HELLO"}}
    assert task["assigned_agent_id"] == agent_id
    assert task["attempts"] == 1
    assert task["started_at"] and task["completed_at"]

    trust = await stack.trust(agent_id)
    assert trust["trust_score"] == pytest.approx(0.52)
    [record] = trust["records"]
    assert record["event_type"] == "success"
    assert (record["score_before"], record["score_after"]) == (pytest.approx(0.5), pytest.approx(0.52))
    assert record["delta"] == pytest.approx(0.02)
    assert record["task_id"] == accepted["id"]
    assert record["created_at"]


async def test_agent_returning_500_fails_the_task_and_costs_005(stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/fail")
    key, _ = await stack.new_key()
    accepted = await stack.submit(key, required_capabilities=[tag], max_attempts=1)
    task = await stack.wait_for(key, accepted["id"])
    assert task["status"] == "failed"
    assert task["error_code"] == "agent_error"
    assert "HTTP 500" in task["error"]
    trust = await stack.trust(agent_id)
    assert trust["trust_score"] == pytest.approx(0.45)
    assert [r["event_type"] for r in trust["records"]] == ["failure"]
    assert trust["records"][0]["delta"] == pytest.approx(-0.05)


async def test_agent_hanging_past_timeout_ends_timed_out_and_costs_003(stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/hang")
    key, _ = await stack.new_key()
    accepted = await stack.submit(key, required_capabilities=[tag], max_attempts=1, timeout_seconds=1)
    task = await stack.wait_for(key, accepted["id"], timeout=20)
    assert task["status"] == "timed_out"
    assert task["error_code"] == "agent_timeout"
    trust = await stack.trust(agent_id)
    assert trust["trust_score"] == pytest.approx(0.47)
    assert [r["event_type"] for r in trust["records"]] == ["timeout"]


async def test_failed_attempt_is_rerouted_to_another_capable_agent(stack: Stack) -> None:
    _bad_id, tag = await stack.register_agent("/fail")
    good_id, _ = await stack.register_agent("/run", tag=tag)
    # Make the failing agent the least-recently assigned so it is tried first.
    key, _ = await stack.new_key()
    accepted = await stack.submit(key, type="echo", input={"x": 1}, required_capabilities=[tag], max_attempts=3)
    task = await stack.wait_for(key, accepted["id"])
    assert task["status"] == "succeeded"
    assert task["result"] == {"output": {"x": 1}}
    async with stack.db.session() as session:
        attempts = (
            (
                await session.execute(
                    select(TaskAttempt).where(TaskAttempt.task_id == accepted["id"]).order_by(TaskAttempt.attempt)
                )
            )
            .scalars()
            .all()
        )
    used = [a.agent_id for a in attempts]
    assert used[-1] == good_id
    assert len(set(used)) == len(used), "an agent that failed the task was tried again while another was free"
    assert task["attempts"] == len(attempts)


async def test_cancel_stops_a_running_task_without_touching_trust(stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/hang")
    key, _ = await stack.new_key()
    accepted = await stack.submit(key, required_capabilities=[tag], timeout_seconds=120, max_attempts=1)
    await stack.wait_for(key, accepted["id"], {"running"})
    response = await stack.http.post(f"/v1/tasks/{accepted['id']}/cancel", headers=auth(key))
    assert response.status_code == 202, response.text
    task = await stack.wait_for(key, accepted["id"], timeout=15)
    assert task["status"] == "cancelled"
    trust = await stack.trust(agent_id)
    assert trust["records"] == [] and trust["trust_score"] == pytest.approx(0.5)
    again = await stack.http.post(f"/v1/tasks/{accepted['id']}/cancel", headers=auth(key))
    assert again.status_code == 409
    agent = (await stack.http.get(f"/v1/agents/{agent_id}", headers=auth(stack.admin_key))).json()
    assert agent["running_tasks"] == 0, "a cancelled attempt must release the agent's slot"


async def test_task_without_any_capable_agent_fails_fast(stack: Stack) -> None:
    key, _ = await stack.new_key()
    accepted = await stack.submit(key, required_capabilities=["no-such-capability-xyz"])
    task = await stack.wait_for(key, accepted["id"], timeout=10)
    assert task["status"] == "failed"
    assert task["error_code"] == "no_capable_agent"
    assert "no-such-capability-xyz" in task["error"]


async def test_same_idempotency_key_gives_one_task(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    body = {"type": "echo", "input": {"n": 1}, "required_capabilities": [tag], "idempotency_key": "order-42"}
    first, second = await asyncio.gather(
        stack.http.post("/v1/tasks", headers=auth(key), json=body),
        stack.http.post("/v1/tasks", headers=auth(key), json=body),
    )
    assert first.status_code == second.status_code == 202
    ids = {first.json()["id"], second.json()["id"]}
    assert len(ids) == 1
    assert sorted([first.json()["created"], second.json()["created"]]) == [False, True]
    task_id = ids.pop()
    await stack.wait_for(key, task_id)
    third = await stack.http.post(
        "/v1/tasks",
        headers={**auth(key), "Idempotency-Key": "order-42"},
        json={k: v for k, v in body.items() if k != "idempotency_key"},
    )
    assert third.status_code == 202 and third.json()["id"] == task_id and third.json()["created"] is False
    listing = (await stack.http.get("/v1/tasks", headers=auth(key), params={"limit": 50})).json()
    assert [t["id"] for t in listing["items"]] == [task_id]
    async with stack.db.session() as session:
        records = (
            await session.execute(select(func.count()).select_from(TrustRecord).where(TrustRecord.task_id == task_id))
        ).scalar_one()
    assert records == 1
    changed = await stack.http.post("/v1/tasks", headers=auth(key), json={**body, "input": {"n": 2}})
    assert changed.status_code == 409
    assert "different request" in changed.json()["error"]["message"]


async def test_list_tasks_filters_and_paginates(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    ids = [(await stack.submit(key, type="echo", required_capabilities=[tag]))["id"] for _ in range(5)]
    for task_id in ids:
        await stack.wait_for(key, task_id)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await stack.http.get("/v1/tasks", headers=auth(key), params=params)).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids)), "newest first, every task exactly once"
    succeeded = (await stack.http.get("/v1/tasks", headers=auth(key), params={"status": "succeeded"})).json()
    assert len(succeeded["items"]) == 5
    failed = (await stack.http.get("/v1/tasks", headers=auth(key), params={"status": "failed"})).json()
    assert failed["items"] == []
    bad = await stack.http.get("/v1/tasks", headers=auth(key), params={"cursor": "!!!"})
    assert bad.status_code == 422


async def test_the_temporal_run_ends_as_the_task_did(stack: Stack) -> None:
    """The Temporal UI agrees with AINS: a succeeded task's run completed, a failed one's failed with the
    error code and reason, a timed-out one's failed as TaskTimedOut."""
    from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
    from temporalio.exceptions import ApplicationError

    key, _ = await stack.new_key()
    _, good = await stack.register_agent("/run")
    _, bad = await stack.register_agent("/fail")
    _, slow = await stack.register_agent("/hang")
    ok = await stack.submit(key, required_capabilities=[good])
    failed = await stack.submit(key, required_capabilities=[bad], max_attempts=1)
    timed_out = await stack.submit(key, required_capabilities=[slow], max_attempts=1, timeout_seconds=1)
    client = await stack.temporal()
    expectations = [(ok, "succeeded", None), (failed, "failed", "TaskFailed"), (timed_out, "timed_out", "TaskTimedOut")]
    for task, status, failure_type in expectations:
        assert (await stack.wait_for(key, task["id"]))["status"] == status
        handle = client.get_workflow_handle(task["workflow_id"])
        if failure_type is None:
            await handle.result()
            assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
            continue
        try:
            await handle.result()
        except WorkflowFailureError as err:
            assert isinstance(err.cause, ApplicationError) and err.cause.type == failure_type, err.cause
            assert err.cause.non_retryable
            code, why = (
                ("agent_error", "HTTP 500") if status == "failed" else ("agent_timeout", "did not answer within 1s")
            )
            assert err.cause.message.startswith(f"task {status}: {code}: "), err.cause.message
            assert why in err.cause.message, err.cause.message
        else:
            raise AssertionError(f"the run of a {status} task completed")
        assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED


async def test_the_agent_call_runs_eagerly_on_the_orchestration_queue_by_default(stack: Stack) -> None:
    # AINS_AGENT_CALLS_QUEUE=orchestration (the default): the call is scheduled on the queue of the worker that
    # runs the workflow, which takes it eagerly; a task submitted under "agents" would schedule it there.
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    accepted = await stack.submit(key, type="echo", required_capabilities=[tag])
    assert (await stack.wait_for(key, accepted["id"]))["status"] == "succeeded"
    client = await stack.temporal()
    queues = [
        event.activity_task_scheduled_event_attributes.task_queue.name
        async for event in client.get_workflow_handle(f"task-{accepted['id']}").fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert queues == [ORCHESTRATION_QUEUE]
