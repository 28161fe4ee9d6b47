"""A worker process killed with SIGKILL mid-call loses nothing and double-counts nothing."""

from __future__ import annotations

import asyncio
import signal

import httpx
from sqlalchemy import func, select

from ains.models.tables import TaskAttempt, TrustRecord
from tests.support.stack import Stack


async def _wait_until_calls(stack: Stack, key: str, timeout: float = 20) -> None:
    """Wait until the demo agent has received the call for attempt ``key``."""
    async with httpx.AsyncClient(base_url=stack.demo_url) as http:
        for _ in range(int(timeout / 0.05)):
            if (await http.get("/calls")).json().get(key, 0) >= 1:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"agent never received {key}")


async def test_sigkill_during_agent_call_completes_once_with_one_trust_record(stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/run")
    await stack.stop_worker()
    doomed = stack.spawn_worker_process()
    try:
        key, _ = await stack.new_key()
        task = await stack.submit(
            key, type="echo", input={"delay_seconds": 2, "v": 7}, required_capabilities=[tag], max_attempts=1
        )
        await _wait_until_calls(stack, f"{task['id']}:1")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)

        replacement = stack.spawn_worker_process()
        done = await stack.wait_for(key, task["id"], timeout=60)
        assert done["status"] == "succeeded", done
        assert done["result"] == {"output": {"delay_seconds": 2, "v": 7}}
        assert done["attempts"] == 1

        async with stack.db.session() as session:
            records = (
                await session.execute(
                    select(func.count()).select_from(TrustRecord).where(TrustRecord.task_id == task["id"])
                )
            ).scalar_one()
            attempts = (
                (await session.execute(select(TaskAttempt).where(TaskAttempt.task_id == task["id"]))).scalars().all()
            )
        assert records == 1
        async with httpx.AsyncClient(base_url=stack.demo_url) as http:
            calls = (await http.get("/calls")).json()[f"{task['id']}:1"]
        assert calls == 2, "the call in flight on the killed worker is repeated once, with the same attempt number"
        assert [(a.attempt, a.status) for a in attempts] == [(1, "succeeded")]
        trust = await stack.trust(agent_id)
        assert trust["total_tasks"] == 1
        assert [r["event_type"] for r in trust["records"]] == ["success"]
        replacement.send_signal(signal.SIGTERM)
        replacement.wait(20)
    finally:
        for process in stack._processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        await stack.start_worker()
