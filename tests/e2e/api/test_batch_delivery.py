"""Batches: nothing accepted is lost, retries are idempotent, validation is per item and all or nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from temporalio.service import RPCError, RPCStatusCode

from ains.core.composition import batches
from ains.core.platform.errors import Unavailable
from ains.core.tasks.service import record_task
from ains.models.tables import Task
from ains.models.tasks import TaskBatchCreate, TaskCreate
from tests.support.stack import Stack, auth


async def _count(stack: Stack, client: str) -> int:
    async with stack.db.session() as session:
        query = select(func.count()).select_from(Task).where(Task.client_id == client)
        return int((await session.execute(query)).scalar_one())


async def test_tasks_of_a_batch_start_even_if_the_api_never_confirms_its_commit(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if the API died right after committing: the batch workflow never hears back, reads the registry.
    async def lost(*_: Any, **__: Any) -> None:
        return None

    monkeypatch.setattr(batches, "_tell", lost)
    monkeypatch.setattr(batches, "RECORD_WAIT_SECONDS", 1.0)
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    items = [{"type": "echo", "input": {"i": i}, "required_capabilities": [tag]} for i in range(5)]
    response = await stack.http.post("/v1/tasks/batch", headers=auth(key), json={"tasks": items})
    assert response.status_code == 202, response.text
    ids = [t["id"] for t in response.json()["tasks"]]
    listed = await stack.http.get("/v1/tasks", headers=auth(key), params={"limit": 10})
    assert {t["id"] for t in listed.json()["items"]} == set(ids), "listed at once"
    for index, task_id in enumerate(ids):
        done = await stack.wait_for(key, task_id, timeout=60)
        assert done["status"] == "succeeded", done
        assert done["input"] == {"i": index}


async def test_a_batch_is_not_recorded_when_temporal_cannot_be_reached(stack: Stack) -> None:
    class Unreachable:
        async def start_workflow(self, *_: Any, **__: Any) -> None:
            raise RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b"")

    _, client = await stack.new_key()
    batch = TaskBatchCreate(tasks=[TaskCreate(type="echo", input={"i": i}) for i in range(50)])
    with pytest.raises(Unavailable, match="nothing was recorded"):
        await batches.submit_batch(stack.db, Unreachable(), stack.settings, client, batch)  # type: ignore[arg-type]
    assert await _count(stack, client) == 0, "the rows were rolled back: the batch can simply be sent again"


async def test_resubmitting_a_batch_starts_tasks_an_earlier_request_recorded_but_never_started(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    key, client = await stack.new_key()
    items = [
        {"type": "echo", "input": {"i": i}, "required_capabilities": [tag], "idempotency_key": f"k{i}"}
        for i in range(4)
    ]
    # Rows of the first two items exist without any workflow (a crash between commit and start).
    orphans = [
        (await record_task(stack.db, stack.settings, client, TaskCreate.model_validate(item)))[0].id
        for item in items[:2]
    ]
    response = await stack.http.post("/v1/tasks/batch", headers=auth(key), json={"tasks": items})
    assert response.status_code == 202, response.text
    accepted = response.json()["tasks"]
    assert [t["id"] for t in accepted[:2]] == orphans
    assert [t["created"] for t in accepted] == [False, False, True, True]
    for task in accepted:
        assert (await stack.wait_for(key, task["id"]))["status"] == "succeeded"
    again = await stack.http.post("/v1/tasks/batch", headers=auth(key), json={"tasks": items})
    assert [t["created"] for t in again.json()["tasks"]] == [False] * 4
    assert [t["status"] for t in again.json()["tasks"]] == ["succeeded"] * 4
    assert await _count(stack, client) == 4
    changed = [{**items[0], "input": {"i": "other"}}, items[1]]
    conflict = await stack.http.post("/v1/tasks/batch", headers=auth(key), json={"tasks": changed})
    assert conflict.status_code == 422, conflict.text
    assert [d["index"] for d in conflict.json()["error"]["details"]] == [0]


async def test_batch_validation_names_every_bad_item_with_templates_and_callbacks(stack: Stack) -> None:
    key, client = await stack.new_key()
    other_key, _ = await stack.new_key()
    mine = await stack.http.post("/v1/templates", headers=auth(key), json={"name": "t", "task_type": "echo"})
    theirs = await stack.http.post("/v1/templates", headers=auth(other_key), json={"name": "t", "task_type": "echo"})
    assert mine.status_code == theirs.status_code == 201
    items: list[dict[str, Any]] = [
        {"template_id": mine.json()["id"], "input": {"ok": True}},
        {"template_id": theirs.json()["id"]},
        {"template_id": "tpl_missing"},
        {"type": "echo", "callback_url": "http://metadata.google.internal/hook"},
        {"type": "echo", "idempotency_key": "same"},
        {"type": "echo", "idempotency_key": "same"},
        {"type": "echo", "timeout_seconds": stack.settings.max_timeout_seconds + 1},
    ]
    response = await stack.http.post("/v1/tasks/batch", headers=auth(key), json={"tasks": items})
    assert response.status_code == 422, response.text
    details = {d["index"]: d["msg"] for d in response.json()["error"]["details"]}
    assert sorted(details) == [1, 2, 3, 4, 5, 6]
    assert "not found" in details[1] and "not found" in details[2] and "metadata" in details[3]
    assert await _count(stack, client) == 0
    template = await stack.http.get(f"/v1/templates/{mine.json()['id']}", headers=auth(key))
    assert template.json()["times_used"] == 0
    ok = await stack.http.post("/v1/tasks/batch", headers=auth(key), json={"tasks": [items[0], items[0], items[0]]})
    assert ok.status_code == 202, ok.text
    template = await stack.http.get(f"/v1/templates/{mine.json()['id']}", headers=auth(key))
    assert template.json()["times_used"] == 3
