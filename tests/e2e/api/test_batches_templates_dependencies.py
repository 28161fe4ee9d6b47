"""Batches, templates and dependencies between separately submitted tasks, end to end."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from ains.models.tables import Task
from ains.models.tasks import TaskStatus
from tests.support.stack import Stack, auth


async def test_a_batch_of_1000_tasks_is_accepted_at_once_and_every_task_starts(stack: Stack) -> None:
    # Every item waits on one blocker task, so each of the 1,000 workflows runs its first steps (and shows
    # it in the read model) without 1,000 agent calls slowing the rest of the suite.
    # The blocker waits (without any activity running) for an agent that is marked unavailable.
    down_agent, down_tag = await stack.register_agent("/run")
    await stack.mark_unavailable(down_agent)
    key, client = await stack.new_key()
    blocker = await stack.submit(key, required_capabilities=[down_tag], queue_timeout_seconds=3600)
    items = [{"type": "echo", "input": {"i": i}, "depends_on": [blocker["id"]]} for i in range(1000)]
    response = await stack.http.post("/v1/tasks/batch", headers=auth(key), json={"tasks": items})
    assert response.status_code == 202, response.text
    body = response.json()
    ids = [t["id"] for t in body["tasks"]]
    assert len(set(ids)) == 1000 and all(t["created"] for t in body["tasks"])
    first = await stack.http.get(f"/v1/tasks/{ids[0]}", headers=auth(key))
    assert first.status_code == 200, "readable at once, before its workflow has started"
    async with stack.db.session() as session:
        total = (
            await session.execute(select(func.count()).select_from(Task).where(Task.client_id == client))
        ).scalar_one()
    assert total == 1001
    client_ = await stack.temporal()
    started = await client_.get_workflow_handle(body["workflow_id"]).result()
    assert started == 1000
    # The batch's history holds ids, never the 1,000 tasks: far below Temporal's 2 MB payload limit.
    history = await client_.get_workflow_handle(body["workflow_id"]).fetch_history()
    assert max(len(event.SerializeToString()) for event in history.events) < 16_384
    # Every task's workflow exists (from Temporal). The read model of 1,000 waiting tasks is not awaited:
    # the dependency tests cover the waiting reason, and 1,000 first steps would hold the shared worker.
    for sample in (ids[0], ids[500], ids[-1]):
        described = await client_.get_workflow_handle(f"task-{sample}").describe()
        view = (await stack.http.get(f"/v1/tasks/{sample}", headers=auth(key))).json()
        assert described.status == WorkflowExecutionStatus.RUNNING, view
    assert (await stack.http.get(f"/v1/tasks/{blocker['id']}", headers=auth(key))).json()["status"] == "routing"
    await _stop_quietly(stack, client, [blocker["id"], *ids])


async def _stop_quietly(stack: Stack, client: str, task_ids: list[str]) -> None:
    """Terminate the tasks' workflows and close their rows, so they cost the rest of the suite nothing."""
    temporal = await stack.temporal()
    gate = asyncio.Semaphore(50)

    async def terminate(task_id: str) -> None:
        async with gate:
            try:
                await temporal.get_workflow_handle(f"task-{task_id}").terminate("test cleanup")
            except RPCError:  # already finished
                pass

    await asyncio.gather(*(terminate(task_id) for task_id in task_ids))
    async with stack.db.session() as session, session.begin():
        await session.execute(update(Task).where(Task.client_id == client).values(status=TaskStatus.CANCELLED))


async def test_a_batch_with_one_bad_item_starts_nothing_and_names_the_item(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    key, client = await stack.new_key()
    items = [{"type": "echo", "required_capabilities": [tag]} for _ in range(5)]
    items[3]["input"] = {"big": "x" * (stack.settings.max_task_input_bytes + 1)}
    items[4]["depends_on"] = ["tsk_nope"]
    response = await stack.http.post("/v1/tasks/batch", headers=auth(key), json={"tasks": items})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert [d["index"] for d in error["details"]] == [3, 4]
    assert "tasks[3]" in error["message"] and "tsk_nope" in error["message"]
    async with stack.db.session() as session:
        total = (
            await session.execute(select(func.count()).select_from(Task).where(Task.client_id == client))
        ).scalar_one()
    assert total == 0
    schema = await stack.http.post(
        "/v1/tasks/batch", headers=auth(key), json={"tasks": [{"type": "echo", "priority": 0}]}
    )
    assert schema.status_code == 422 and "priority" in schema.json()["error"]["message"]
    too_many = await stack.http.post("/v1/tasks/batch", headers=auth(key), json={"tasks": [{"type": "echo"}] * 1001})
    assert too_many.status_code == 422, too_many.text
    assert "1000" in too_many.json()["error"]["message"]


async def test_batch_resubmission_with_idempotency_keys_creates_nothing_new(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    items = [{"type": "echo", "required_capabilities": [tag], "idempotency_key": f"k{i}"} for i in range(3)]
    first = (await stack.http.post("/v1/tasks/batch", headers=auth(key), json={"tasks": items})).json()
    again = (await stack.http.post("/v1/tasks/batch", headers=auth(key), json={"tasks": items})).json()
    assert [t["id"] for t in first["tasks"]] == [t["id"] for t in again["tasks"]]
    assert [t["created"] for t in again["tasks"]] == [False, False, False]
    for task in first["tasks"]:
        assert (await stack.wait_for(key, task["id"]))["status"] == "succeeded"


async def test_templates_fill_defaults_count_uses_and_can_be_overridden(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    created = await stack.http.post(
        "/v1/templates",
        headers=auth(key),
        json={
            "name": "shout",
            "task_type": "uppercase",
            "defaults": {"input": {"text": "default", "lang": "en"}, "required_capabilities": [tag], "priority": 8},
        },
    )
    assert created.status_code == 201, created.text
    template = created.json()
    duplicate = await stack.http.post("/v1/templates", headers=auth(key), json={"name": "shout", "task_type": "echo"})
    assert duplicate.status_code == 409
    bad = await stack.http.post(
        "/v1/templates", headers=auth(key), json={"name": "x", "task_type": "echo", "defaults": {"type": "y"}}
    )
    assert bad.status_code == 422

    response = await stack.http.post(
        "/v1/tasks", headers=auth(key), json={"template_id": template["id"], "input": {"text": "hello"}}
    )
    assert response.status_code == 202, response.text
    done = await stack.wait_for(key, response.json()["id"])
    assert done["type"] == "uppercase" and done["priority"] == 8
    assert done["input"] == {"text": "hello", "lang": "en"}, "input merges key by key, the request wins"
    assert done["result"] == {"output": {"text": "HELLO"}}
    override = await stack.http.post(
        "/v1/tasks", headers=auth(key), json={"template_id": template["id"], "priority": 2}
    )
    assert (await stack.wait_for(key, override.json()["id"]))["priority"] == 2

    read = (await stack.http.get(f"/v1/templates/{template['id']}", headers=auth(key))).json()
    assert read["times_used"] == 2
    other, _ = await stack.new_key()
    assert (await stack.http.get(f"/v1/templates/{template['id']}", headers=auth(other))).status_code == 404
    foreign = await stack.http.post("/v1/tasks", headers=auth(other), json={"template_id": template["id"]})
    assert foreign.status_code == 422 and "template" in foreign.json()["error"]["message"]


async def test_dependent_task_waits_for_its_dependency_without_polling(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    # The first call lasts long enough for the second task's workflow to start and report its wait even on a
    # loaded machine (once the dependency has finished, the dependent never waits at all).
    first = await stack.submit(key, type="echo", input={"delay_seconds": 4}, required_capabilities=[tag])
    second = await stack.submit(key, type="echo", required_capabilities=[tag], depends_on=[first["id"]])
    waiting: dict[str, Any] = {}
    deadline = time.monotonic() + 10
    while "waiting for 1 dependency" not in (waiting.get("status_reason") or "") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the task is pending from submission; its workflow adds the reason
        waiting = (await stack.http.get(f"/v1/tasks/{second['id']}", headers=auth(key))).json()
    assert waiting["status"] == "pending" and "waiting for 1 dependency" in (waiting["status_reason"] or ""), waiting
    done_first = await stack.wait_for(key, first["id"])
    done_second = await stack.wait_for(key, second["id"], timeout=20)
    assert done_second["status"] == "succeeded"
    assert done_second["started_at"] >= done_first["completed_at"]
    gap = datetime.fromisoformat(done_second["started_at"]) - datetime.fromisoformat(done_first["completed_at"])
    assert gap < timedelta(seconds=10), "woken by the dependency_finished signal, not the 10-minute safety re-check"


async def test_dependency_failure_fails_the_dependent_with_dependency_failed(stack: Stack) -> None:
    _, fail_tag = await stack.register_agent("/fail")
    _, ok_tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    doomed = await stack.submit(key, required_capabilities=[fail_tag], max_attempts=1)
    dependent = await stack.submit(key, required_capabilities=[ok_tag], depends_on=[doomed["id"]])
    done = await stack.wait_for(key, dependent["id"], timeout=20)
    assert done["status"] == "failed" and done["error_code"] == "dependency_failed"
    assert doomed["id"] in done["error"] and done["attempts"] == 0
    unknown = await stack.http.post("/v1/tasks", headers=auth(key), json={"type": "echo", "depends_on": ["tsk_x"]})
    assert unknown.status_code == 422


async def test_no_wake_up_is_lost_when_a_dependency_finishes_as_the_dependent_is_submitted(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run", max_concurrency=50)
    key, _ = await stack.new_key()
    dependents = []
    for i in range(20):
        # The dependency takes a few milliseconds, so it finishes around the time the dependent arrives.
        dep = await stack.submit(key, type="echo", input={"i": i}, required_capabilities=[tag])
        await asyncio.sleep(0.005 * (i % 10))
        dependents.append(await stack.submit(key, type="echo", required_capabilities=[tag], depends_on=[dep["id"]]))
    results = await asyncio.gather(*(stack.wait_for(key, d["id"], timeout=60) for d in dependents))
    assert [r["status"] for r in results] == ["succeeded"] * 20
