"""An agent written with the SDK, end to end on the real stack: it registers and heartbeats, AINS routes tasks
to it, forged, stale and replayed requests are refused, and a call delivered twice (also after a worker
SIGKILL) does the work once."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from ains.core.platform.signing import signed_headers
from ains.examples import quick_agent
from ains.models.tasks import TaskStatus
from ains.sdk import AsyncClient
from ains.sdk.agent import Agent, CallContext
from tests.support.sdk_agents import ServedAgent, served_agent
from tests.support.stack import SIGNING_SECRET, Stack


@pytest.fixture
async def quick(stack: Stack) -> AsyncIterator[ServedAgent]:
    async with served_agent(
        stack, quick_agent.build(SIGNING_SECRET, agent_id=f"quick-{uuid.uuid4().hex[:8]}")
    ) as served:
        yield served


def _signed(body: dict[str, object], *, secret: str = SIGNING_SECRET, now: float | None = None) -> tuple[bytes, dict]:
    raw = json.dumps(body).encode()
    return raw, {"Content-Type": "application/json", **signed_headers(secret, raw, now)}


async def test_sdk_agent_registers_heartbeats_and_serves_routed_tasks(stack: Stack, quick: ServedAgent) -> None:
    key, _ = await stack.new_key()
    async with AsyncClient(stack.api_url, key) as ains:
        registered = await ains.agents.get(quick.agent.id)
        for _ in range(100):  # the first heartbeat follows the registration
            if registered.last_heartbeat_at is not None:
                break
            await asyncio.sleep(0.1)
            registered = await ains.agents.get(quick.agent.id)
        assert {(c.tag, c.version) for c in registered.capabilities} == {("text_stats", "1.2"), ("find_word", "2.0")}
        assert registered.endpoint_url == f"{quick.url}/run" and registered.last_heartbeat_at is not None
        done = await ains.tasks.run(
            {
                "type": "text_stats",
                "input": {"text": "the cat saw the dog"},
                "required_capabilities": ["text_stats>=1.2"],
                "exclude_agents": ["demo-agent"],
            },
            timeout=30,
        )
        assert done.status == TaskStatus.SUCCEEDED and done.assigned_agent_id == quick.agent.id
        assert done.result == {"output": {"characters": 19, "words": 5, "unique_words": 4}}

        failed = await ains.tasks.run(
            {"type": "find_word", "input": {"text": "a b", "word": "zebra"}, "max_attempts": 1}, timeout=30
        )
        assert failed.status == TaskStatus.FAILED and "'zebra' does not occur" in (failed.error or "")
        invalid = await ains.tasks.run({"type": "text_stats", "input": {"txt": "typo"}, "max_attempts": 1}, timeout=30)
        assert invalid.status == TaskStatus.FAILED and "invalid input for text_stats" in (invalid.error or "")


async def test_forged_stale_and_replayed_calls_are_refused(quick: ServedAgent) -> None:
    call = {"task_id": f"tsk_{uuid.uuid4().hex}", "attempt": 1, "type": "text_stats", "input": {"text": "a b"}}
    async with httpx.AsyncClient(base_url=quick.url) as http:
        raw, headers = _signed(call)
        assert (await http.post("/run", content=raw, headers={"Content-Type": "application/json"})).status_code == 401
        forged_raw, forged = _signed(call, secret="not-the-secret")
        assert (await http.post("/run", content=forged_raw, headers=forged)).status_code == 401
        stale_raw, stale = _signed(call, now=time.time() - 600)
        refused = await http.post("/run", content=stale_raw, headers=stale)
        assert refused.status_code == 401 and "timestamp" in refused.json()["detail"]
        tampered = raw.replace(b"a b", b"a b c")
        assert (await http.post("/run", content=tampered, headers=headers)).status_code == 401

        first = await http.post("/run", content=raw, headers=headers)
        assert first.status_code == 200 and first.json() == {"output": {"characters": 3, "words": 2, "unique_words": 2}}
        replayed = await http.post("/run", content=raw, headers=headers)
        assert replayed.status_code == 401 and "replayed" in replayed.json()["detail"]
    assert quick.agent.executions(call["task_id"], 1) == 1


async def test_a_call_delivered_again_is_answered_from_its_one_run(stack: Stack) -> None:
    agent = Agent(f"slow-{uuid.uuid4().hex[:8]}", signing_secret=SIGNING_SECRET)
    runs: list[str] = []

    @agent.capability("slow_sum")
    async def slow_sum(data: dict[str, list[int]], call: CallContext) -> dict[str, int]:
        runs.append(call.task_id)
        await asyncio.sleep(0.5)
        return {"sum": sum(data["numbers"])}

    async with served_agent(stack, agent) as served:
        call = {"task_id": f"tsk_{uuid.uuid4().hex}", "attempt": 1, "type": "slow_sum", "input": {"numbers": [1, 2]}}
        async with httpx.AsyncClient(base_url=served.url) as http:

            async def deliver(at: float) -> httpx.Response:
                raw, headers = _signed(call, now=at)  # a fresh signature each time, like a retried activity
                return await http.post("/run", content=raw, headers=headers)

            answers = await asyncio.gather(deliver(time.time()), deliver(time.time() + 1))
            later = await deliver(time.time() + 2)
        assert [a.status_code for a in [*answers, later]] == [200, 200, 200]
        assert {a.text for a in [*answers, later]} == {json.dumps({"output": {"sum": 3}}, separators=(",", ":"))}
        assert runs == [call["task_id"]], "three deliveries, one run"
        assert agent.deliveries[f"{call['task_id']}:1"] == 3 and agent.executions(call["task_id"], 1) == 1
        retry = {**call, "attempt": 2}
        raw, headers = _signed(retry)
        async with httpx.AsyncClient(base_url=served.url) as http:
            assert (await http.post("/run", content=raw, headers=headers)).status_code == 200
        assert len(runs) == 2, "a new attempt is new work"


async def test_call_redelivered_after_a_worker_sigkill_runs_once(stack: Stack) -> None:
    agent = Agent(f"crash-{uuid.uuid4().hex[:8]}", signing_secret=SIGNING_SECRET)
    tag = f"cap-{uuid.uuid4().hex[:8]}"
    runs: list[str] = []

    @agent.capability(tag)  # a tag of its own: only this agent can take the task
    async def transfer(data: dict[str, int], call: CallContext) -> dict[str, int]:
        runs.append(f"{call.task_id}:{call.attempt}")
        await asyncio.sleep(2)
        return {"moved": data["amount"]}

    await stack.stop_worker()
    doomed = stack.spawn_worker_process()
    try:
        async with served_agent(stack, agent):
            key, _ = await stack.new_key()
            async with AsyncClient(stack.api_url, key) as ains:
                task = await ains.tasks.submit({"type": tag, "input": {"amount": 5}, "max_attempts": 1})
                for _ in range(400):
                    if agent.deliveries[f"{task.id}:1"]:
                        break
                    await asyncio.sleep(0.025)
                doomed.send_signal(signal.SIGKILL)
                doomed.wait(10)
                stack.spawn_worker_process()
                done = await ains.tasks.wait(task.id, timeout=60)
            assert done.status == TaskStatus.SUCCEEDED and done.result == {"output": {"moved": 5}}
            assert agent.deliveries[f"{task.id}:1"] == 2, "the call cut by the kill was delivered again"
            assert runs == [f"{task.id}:1"], "and the work was done once"
    finally:
        for process in stack._processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        await stack.start_worker()
