"""Long-running agents: the call is accepted with 202 and completed later through the API (Temporal
asynchronous activity completion). The workflow waits durably with no HTTP connection open: the answer
arrives even while no worker runs, heartbeats through the API keep a call alive past the heartbeat timeout,
and cancelling the task stops the agent's work."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid

from ains.core.platform.signing import signed_headers
from ains.examples import progress_agent
from ains.models.tasks import TaskStatus
from ains.sdk import AsyncClient
from ains.sdk.agent import Agent, CallContext
from tests.support.sdk_agents import served_agent
from tests.support.servers import bound_socket
from tests.support.stack import SIGNING_SECRET, Stack, auth


async def _until(predicate: object, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_long_running_call_completes_after_its_worker_is_killed_and_replaced(stack: Stack) -> None:
    agent = progress_agent.build(SIGNING_SECRET, agent_id=f"progress-{uuid.uuid4().hex[:8]}")
    await stack.stop_worker()
    doomed = stack.spawn_worker_process()
    try:
        async with served_agent(stack, agent):
            key, _ = await stack.new_key()
            async with AsyncClient(stack.api_url, key) as ains:
                # 3 x 1 s: longer than the stack's 2 s heartbeat timeout; the SDK's heartbeats through the API
                # keep the call alive.
                task = await ains.tasks.submit(
                    {
                        "type": "slow_report",
                        "input": {"sections": ["intro", "body", "end"], "seconds_per_section": 1.0},
                        "max_attempts": 1,
                    }
                )
                await _until(lambda: agent.deliveries[f"{task.id}:1"] == 1)
                doomed.send_signal(signal.SIGKILL)  # the call was accepted (202): no worker, no connection holds it
                doomed.wait(10)
                await asyncio.wait_for(asyncio.shield(agent.ledger.run_of(task.id, 1)), 20)  # the agent completed
                assert (await ains.tasks.get(task.id)).status == TaskStatus.RUNNING, "completed, not yet recorded"
                stack.spawn_worker_process()
                done = await ains.tasks.wait(task.id, timeout=30)
            assert done.status == TaskStatus.SUCCEEDED, done
            assert done.result == {"output": {"report": ["1. INTRO", "2. BODY", "3. END"]}}
            assert done.attempts == 1
            assert agent.deliveries[f"{task.id}:1"] == 1 and agent.executions(task.id, 1) == 1
            trust = await stack.trust(agent.id)
            assert [r["event_type"] for r in trust["records"]] == ["success"]
    finally:
        for process in stack._processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        await stack.start_worker()


async def test_cancelling_the_task_stops_the_agents_work(stack: Stack) -> None:
    agent = Agent(f"cancellable-{uuid.uuid4().hex[:8]}", signing_secret=SIGNING_SECRET)
    tag = f"cap-{uuid.uuid4().hex[:8]}"
    steps: list[int] = []
    stopped = asyncio.Event()

    @agent.capability(tag, long_running=True)
    async def crunch(data: dict[str, int], call: CallContext) -> dict[str, int]:
        try:
            for step in range(data["steps"]):
                await asyncio.sleep(0.2)
                steps.append(step)
                await call.progress({"step": step})
        finally:
            stopped.set()
        return {"steps": len(steps)}

    async with served_agent(stack, agent):
        key, _ = await stack.new_key()
        async with AsyncClient(stack.api_url, key) as ains:
            task = await ains.tasks.submit({"type": tag, "input": {"steps": 200}, "max_attempts": 1})
            await _until(lambda: len(steps) >= 3)
            await ains.tasks.cancel(task.id)
            assert (await ains.tasks.wait(task.id, timeout=20)).status == TaskStatus.CANCELLED
            await asyncio.wait_for(stopped.wait(), 10)
        assert len(steps) < 200, "the agent stopped when the task was cancelled"


async def test_agent_call_endpoints_need_the_signature_and_a_live_token(stack: Stack) -> None:
    completion = {"token": "bm90LWEtdG9rZW4", "task_id": "tsk_x", "attempt": 1, "output": {"a": 1}}
    raw = json.dumps(completion).encode()
    plain = {"Content-Type": "application/json"}
    unsigned = await stack.http.post("/v1/agent-calls/complete", content=raw, headers=plain)
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "unauthorized"
    forged = await stack.http.post(
        "/v1/agent-calls/complete", content=raw, headers={**plain, **signed_headers("wrong", raw)}
    )
    assert forged.status_code == 401
    signed = await stack.http.post(
        "/v1/agent-calls/complete", content=raw, headers={**plain, **signed_headers(SIGNING_SECRET, raw)}
    )
    # Bytes that are no Temporal task token: Temporal refuses them as an invalid argument, never a 500.
    assert signed.status_code == 422, signed.text
    both = json.dumps({**completion, "error": "and failed"}).encode()
    invalid = await stack.http.post(
        "/v1/agent-calls/complete", content=both, headers={**plain, **signed_headers(SIGNING_SECRET, both)}
    )
    assert invalid.status_code == 422 and "exactly one of output and error" in invalid.text
    beat = json.dumps({"token": "%%%"}).encode()
    bad_token = await stack.http.post(
        "/v1/agent-calls/heartbeat", content=beat, headers={**plain, **signed_headers(SIGNING_SECRET, beat)}
    )
    assert bad_token.status_code == 422, bad_token.text


def _spawn(module: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", module, "--port", str(port)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def test_example_agent_runs_as_its_own_process(stack: Stack) -> None:
    """``python -m ains.examples.progress_agent`` registers itself from AINS_* and completes a task through the API."""
    key, _ = await stack.new_key()
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = {**os.environ, "AINS_URL": stack.api_url, "AINS_API_KEY": key, "AINS_AGENT_SIGNING_SECRET": SIGNING_SECRET}
    process = _spawn("ains.examples.progress_agent", port, env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = await stack.http.get("/v1/agents/example-progress", headers=auth(key))
            if response.status_code == 200:
                break
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            await asyncio.sleep(0.2)
        async with AsyncClient(stack.api_url, key) as ains:
            done = await ains.tasks.run(
                {
                    "type": "slow_report",
                    "input": {"sections": ["only"], "seconds_per_section": 0.2},
                    "exclude_agents": ["demo-agent"],
                },
                timeout=30,
            )
        assert done.status == TaskStatus.SUCCEEDED and done.assigned_agent_id == "example-progress", done
        assert done.result == {"output": {"report": ["1. ONLY"]}}
    finally:
        process.terminate()
        process.wait(10)
        await stack.http.delete("/v1/agents/example-progress", headers=auth(stack.admin_key))
