"""Schedules on Temporal Schedules, end to end: firing (cron and interval), pause, trigger, overlap, backfill,
update, delete, validation and isolation. Runs are real tasks on the real stack."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ains.core.platform.temporal import connect
from tests.support.stack import Stack, auth


def _body(tag: str, **extra: Any) -> dict[str, Any]:
    task = {"type": "echo", "input": extra.pop("input", {"hello": "schedule"}), "required_capabilities": [tag]}
    return {"target": {"kind": "task", "task": task}, **extra}


async def _create(stack: Stack, key: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await stack.http.post("/v1/schedules", headers=auth(key), json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def _get(stack: Stack, key: str, schedule_id: str) -> dict[str, Any]:
    response = await stack.http.get(f"/v1/schedules/{schedule_id}", headers=auth(key))
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def _scheduled_tasks(stack: Stack, key: str, tag: str) -> list[dict[str, Any]]:
    page = await stack.http.get("/v1/tasks", headers=auth(key), params={"limit": 500})
    return [t for t in page.json()["items"] if t["required_capabilities"] == [tag]]


async def _wait_tasks(stack: Stack, key: str, tag: str, count: int, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = await _scheduled_tasks(stack, key, tag)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"{len(found)} scheduled tasks, wanted {count}")


async def _delete(stack: Stack, key: str, schedule_id: str) -> None:
    assert (await stack.http.delete(f"/v1/schedules/{schedule_id}", headers=auth(key))).status_code == 204


async def test_interval_schedule_fires_pauses_triggers_and_reports_runs(stack: Stack) -> None:
    key, _ = await stack.new_key()
    _, tag = await stack.register_agent()
    created = await _create(stack, key, _body(tag, interval_seconds=1, name="every second"))
    assert created["interval_seconds"] == 1 and created["cron"] is None and created["paused"] is False
    assert len(created["next_run_times"]) >= 2
    assert created["temporal_schedule_id"] == f"ains-{created['id']}"
    try:
        tasks = await _wait_tasks(stack, key, tag, 2)
        assert all(t["schedule_id"] == created["id"] for t in tasks)
        done = await stack.wait_for(key, tasks[-1]["id"], {"succeeded"})
        assert done["result"] == {"output": {"hello": "schedule"}}

        paused = await stack.http.post(
            f"/v1/schedules/{created['id']}/pause", headers=auth(key), json={"note": "maintenance window"}
        )
        assert paused.status_code == 200, paused.text
        assert paused.json()["paused"] is True and paused.json()["note"] == "maintenance window"
        await asyncio.sleep(1.5)  # a run fired just before the pause may still be submitting
        before = len(await _scheduled_tasks(stack, key, tag))
        await asyncio.sleep(2.5)
        assert len(await _scheduled_tasks(stack, key, tag)) == before, "a paused schedule started a run"

        triggered = await stack.http.post(f"/v1/schedules/{created['id']}/trigger", headers=auth(key))
        assert triggered.status_code == 202, triggered.text
        tasks = await _wait_tasks(stack, key, tag, before + 1)
        await asyncio.sleep(2.0)
        tasks = await _scheduled_tasks(stack, key, tag)
        assert len(tasks) == before + 1, "trigger must start exactly one run"
        for task in tasks:
            await stack.wait_for(key, task["id"])

        view = await _get(stack, key, created["id"])
        assert view["paused"] is True
        assert view["run_counts"]["ok"] == before + 1 and view["run_counts"]["failed"] == 0
        assert {r["task_id"] for r in view["recent_runs"]} <= {t["id"] for t in tasks}
        assert all(r["status"] == "succeeded" for r in view["recent_runs"])

        resumed = await stack.http.post(f"/v1/schedules/{created['id']}/resume", headers=auth(key), json={})
        assert resumed.status_code == 200 and resumed.json()["paused"] is False
    finally:
        await _delete(stack, key, created["id"])
    assert (await stack.http.get(f"/v1/schedules/{created['id']}", headers=auth(key))).status_code == 404


async def test_cron_schedule_fires(stack: Stack) -> None:
    key, _ = await stack.new_key()
    _, tag = await stack.register_agent()
    # Seven fields: second minute hour day-of-month month day-of-week year, i.e. every second.
    created = await _create(stack, key, _body(tag, cron="* * * * * * *", timezone="Europe/Berlin"))
    try:
        assert created["cron"] == "* * * * * * *" and created["timezone"] == "Europe/Berlin"
        next_runs = [datetime.fromisoformat(t) for t in created["next_run_times"]]
        assert next_runs == sorted(next_runs) and next_runs[1] - next_runs[0] == timedelta(seconds=1)
        (task, *_) = await _wait_tasks(stack, key, tag, 1)
        assert task["schedule_id"] == created["id"]
        # The runs are visible in Temporal, tagged with the schedule that started them.
        temporal = await connect(stack.settings)
        query = f"TemporalScheduledById = '{created['temporal_schedule_id']}'"
        runs = [wf async for wf in temporal.list_workflows(query)]
        assert runs and all(wf.workflow_type == "ScheduledTaskWorkflow" for wf in runs)
    finally:
        await _delete(stack, key, created["id"])


async def test_overlap_skip_never_runs_two_at_once(stack: Stack) -> None:
    key, _ = await stack.new_key()
    _, tag = await stack.register_agent()
    created = await _create(stack, key, _body(tag, interval_seconds=1, overlap="skip", input={"delay_seconds": 2.5}))
    try:
        await asyncio.sleep(5.0)
        view = await _get(stack, key, created["id"])
    finally:
        await _delete(stack, key, created["id"])
    assert view["run_counts"]["skipped"] >= 2, view["run_counts"]
    tasks = await _scheduled_tasks(stack, key, tag)
    assert 1 <= len(tasks) <= 3
    finished = [await stack.wait_for(key, t["id"]) for t in tasks]
    spans = sorted(
        (datetime.fromisoformat(t["created_at"]), datetime.fromisoformat(t["completed_at"])) for t in finished
    )
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, "skip policy let two runs overlap"


async def test_overlap_cancel_other_cancels_the_running_task(stack: Stack) -> None:
    key, _ = await stack.new_key()
    _, tag = await stack.register_agent()
    body = _body(tag, interval_seconds=1, overlap="cancel_other", input={"delay_seconds": 30})
    created = await _create(stack, key, body)
    try:
        tasks = await _wait_tasks(stack, key, tag, 2)
    finally:
        await stack.http.post(f"/v1/schedules/{created['id']}/pause", headers=auth(key), json={})
    first = await stack.wait_for(key, tasks[-1]["id"], {"cancelled"}, timeout=20)
    assert first["schedule_id"] == created["id"]
    await asyncio.sleep(1.0)
    for task in await _scheduled_tasks(stack, key, tag):
        await stack.http.post(f"/v1/tasks/{task['id']}/cancel", headers=auth(key))
    view = await _get(stack, key, created["id"])
    assert view["run_counts"]["failed"] >= 1
    await _delete(stack, key, created["id"])


async def test_backfill_update_and_isolation(stack: Stack) -> None:
    key, _ = await stack.new_key()
    other, _ = await stack.new_key()
    _, tag = await stack.register_agent()
    created = await _create(stack, key, _body(tag, cron="0 * * * *", paused=True, note="backfill only"))
    sid = created["id"]
    try:
        for method, path in (("GET", ""), ("POST", "/pause"), ("POST", "/trigger"), ("DELETE", ""), ("PATCH", "")):
            response = await stack.http.request(
                method, f"/v1/schedules/{sid}{path}", headers=auth(other), json={} if method != "GET" else None
            )
            assert response.status_code == 404, (method, path, response.text)
        assert (await stack.http.get("/v1/schedules", headers=auth(other))).json()["items"] == []
        assert [s["id"] for s in (await stack.http.get("/v1/schedules", headers=auth(key))).json()["items"]] == [sid]

        now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
        backfill = await stack.http.post(
            f"/v1/schedules/{sid}/backfill",
            headers=auth(key),
            json={"start_at": (now - timedelta(hours=3)).isoformat(), "end_at": now.isoformat()},
        )
        assert backfill.status_code == 202, backfill.text
        tasks = await _wait_tasks(stack, key, tag, 3)
        await asyncio.sleep(1.0)
        assert len(await _scheduled_tasks(stack, key, tag)) == 3  # 3 full hours in the range

        updated = await stack.http.patch(
            f"/v1/schedules/{sid}", headers=auth(key), json={"interval_seconds": 3600, "overlap": "allow_all"}
        )
        assert updated.status_code == 200, updated.text
        body = updated.json()
        assert body["cron"] is None and body["interval_seconds"] == 3600 and body["overlap"] == "allow_all"
        assert body["paused"] is True and body["note"] == "backfill only"
        bad = await stack.http.patch(f"/v1/schedules/{sid}", headers=auth(key), json={"timezone": "Mars/Olympus"})
        assert bad.status_code == 422
        for task in tasks:
            await stack.wait_for(key, task["id"])
    finally:
        await _delete(stack, key, sid)


async def test_invalid_schedules_are_422_with_the_reason(stack: Stack) -> None:
    key, _ = await stack.new_key()
    task = {"kind": "task", "task": {"type": "echo"}}
    cases = [
        ({"cron": "61 * * * *", "target": task}, "minute field: 61 is outside 0-59"),
        ({"cron": "* * *", "target": task}, "has 3 fields"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus", "target": task}, "unknown time zone"),
        ({"cron": "0 9 * * *", "interval_seconds": 60, "target": task}, "exactly one of cron or interval_seconds"),
        ({"interval_seconds": 60, "target": {"kind": "chain", "steps": []}}, "kind"),
        (
            {"interval_seconds": 60, "target": {"kind": "task", "task": {"type": "echo", "idempotency_key": "k"}}},
            "idempotency_key",
        ),
        ({"interval_seconds": 60, "overlap": "sometimes", "target": task}, "overlap"),
        (
            {
                "interval_seconds": 60,
                "start_at": "2030-01-02T00:00:00Z",
                "end_at": "2030-01-01T00:00:00Z",
                "target": task,
            },
            "end_at",
        ),
    ]
    for body, reason in cases:
        response = await stack.http.post("/v1/schedules", headers=auth(key), json=body)
        assert response.status_code == 422, (body, response.text)
        assert reason in response.json()["error"]["message"], (reason, response.text)
    assert (await stack.http.get("/v1/schedules", headers=auth(key))).json()["items"] == []
