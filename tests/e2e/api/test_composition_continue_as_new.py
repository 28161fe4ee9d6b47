"""Long chains and plans continue as new, and large outputs flow between steps by reference.

The step limit per run is lowered through Settings (``composition_steps_per_run``, read when a chain or plan
is created), so a handful of steps makes the CompositionWorkflow continue as new several times. The runs are
read back from Temporal (each run's first event names the run it continues) and replayed on today's code.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from ains.workflows.composition import CompositionWorkflow
from tests.e2e.api.test_chains_plans import _steps, _wait
from tests.support.servers import RunningServer, serve
from tests.support.stack import Stack, auth

BLOB_LIMIT = 2 * 1024 * 1024  # Temporal's default limit on one payload
BIG = 1_100_000  # characters in each large output: two of them make a step input above BLOB_LIMIT


@dataclass
class Run:
    run_id: str
    history: WorkflowHistory

    @property
    def last_event(self) -> int:
        return int(self.history.events[-1].event_type)

    def count(self, event_type: int) -> int:
        return sum(1 for e in self.history.events if e.event_type == event_type)

    def largest_event(self) -> int:
        return max(e.ByteSize() for e in self.history.events)


async def _runs(client: Client, workflow_id: str) -> list[Run]:
    """Every run of the workflow, oldest first, following each run's link to the run it continues."""
    runs: list[Run] = []
    run_id: str | None = (await client.get_workflow_handle(workflow_id).describe()).run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.insert(0, Run(run_id, history))
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
    return runs


async def _replay(runs: list[Run]) -> None:
    replayer = Replayer(workflows=[CompositionWorkflow], data_converter=pydantic_data_converter)
    for run in runs:
        result = await replayer.replay_workflow(run.history, raise_on_replay_failure=True)
        assert result.replay_failure is None


async def _agent_calls(stack: Stack) -> dict[str, int]:
    async with httpx.AsyncClient() as http:
        calls: dict[str, int] = (await http.get(f"{stack.demo_url}/calls")).json()
    return calls


async def _assert_each_step_ran_once(stack: Stack, key: str, view: dict[str, Any], runs: list[Run]) -> None:
    task_ids = [s["task_id"] for s in view["steps"]]
    assert len(set(task_ids)) == len(task_ids) and None not in task_ids
    calls = await _agent_calls(stack)
    for task_id in task_ids:
        assert calls.get(f"{task_id}:1") == 1, f"{task_id} was called {calls.get(f'{task_id}:1')} time(s)"
        assert not [k for k in calls if k.startswith(f"{task_id}:") and k != f"{task_id}:1"], "a second attempt"
        task = (await stack.http.get(f"/v1/tasks/{task_id}", headers=auth(key))).json()
        assert task["attempts"] == 1 and task["status"] == "succeeded", task
    started = [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for run in runs
        for e in run.history.events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]
    assert sorted(started) == sorted(f"task-{t}" for t in task_ids), "each step's child started once, in one run"


def _assert_continued(runs: list[Run], final: int = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED) -> None:
    for run in runs[:-1]:
        assert run.last_event == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert runs[-1].last_event == final


def _figures(label: str, runs: list[Run]) -> str:
    events = [len(r.history.events) for r in runs]
    return f"{label}: {len(runs)} runs, events per run {events}, largest event {max(r.largest_event() for r in runs)} B"


async def test_long_chain_continues_as_new_and_runs_every_step_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack.settings, "composition_steps_per_run", 3)
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    count = 10
    steps: list[dict[str, Any]] = [{"name": "s0", "type": "echo", "input": {"k0": 0}, "required_capabilities": [tag]}]
    for i in range(1, count):
        step_input: dict[str, Any] = {f"k{i}": i, "prev": {"$ref": f"steps.s{i - 1}.output.k{i - 1}"}}
        steps.append({"name": f"s{i}", "type": "echo", "input": step_input, "required_capabilities": [tag]})
    steps[-1]["input"]["origin"] = {"$ref": "steps.s0.output.k0"}  # a step of the first run
    created = await stack.http.post("/v1/task-chains", headers=auth(key), json={"name": "long", "steps": steps})
    assert created.status_code == 202, created.text
    chain_id = created.json()["id"]

    done = await _wait(stack, key, f"/v1/task-chains/{chain_id}", timeout=120)
    assert done["status"] == "succeeded", done
    assert done["progress"] == f"{count}/{count}" and done["completed_at"] is not None
    by_name = _steps(done)
    assert [s["status"] for s in done["steps"]] == ["succeeded"] * count
    assert by_name["s1"]["depends_on"] == ["s0"] and by_name["s0"]["depends_on"] == []
    # Every key travelled the whole chain (merged output), and both references resolved across runs.
    expected = {f"k{i}": i for i in range(count)} | {"prev": count - 2, "origin": 0}
    assert by_name[f"s{count - 1}"]["result"] == {"output": expected}
    assert by_name["s5"]["result"]["output"]["prev"] == 4

    runs = await _runs(await stack.temporal(), done["workflow_id"])
    assert len(runs) == 4, _figures("chain", runs)  # 3 + 3 + 3 + 1 steps
    _assert_continued(runs)
    started = [r.count(EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED) for r in runs]
    assert started == [3, 3, 3, 1]
    await _assert_each_step_ran_once(stack, key, done, runs)
    await _replay(runs)
    print(_figures("chain of 10, 3 steps per run", runs))


async def test_history_length_threshold_continues_as_new(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.settings, "composition_max_history_events", 40)  # no step count limit
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    steps = [{"name": f"s{i}", "type": "echo", "input": {f"k{i}": i}, "required_capabilities": [tag]} for i in range(8)]
    created = await stack.http.post("/v1/task-chains", headers=auth(key), json={"steps": steps})
    assert created.status_code == 202, created.text
    done = await _wait(stack, key, f"/v1/task-chains/{created.json()['id']}", timeout=120)
    assert done["status"] == "succeeded", done
    assert _steps(done)["s7"]["result"] == {"output": {f"k{i}": i for i in range(8)}}
    runs = await _runs(await stack.temporal(), done["workflow_id"])
    assert len(runs) >= 2, _figures("chain", runs)
    _assert_continued(runs)
    for run in runs[:-1]:  # a run stops starting steps once its history has 40 events, then drains
        assert len(run.history.events) < 40 + 20
    await _assert_each_step_ran_once(stack, key, done, runs)
    print(_figures("chain of 8, 40 history events per run", runs))


async def test_wide_plan_drains_parallel_steps_before_continuing(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.settings, "composition_steps_per_run", 2)
    _, tag = await stack.register_agent("/run", max_concurrency=10)
    key, _ = await stack.new_key()
    branches = [f"b{i}" for i in range(5)]
    plan = {
        "steps": [
            {"name": "root", "type": "echo", "input": {"seed": "r"}, "required_capabilities": [tag]},
            *(
                {
                    "name": b,
                    "type": "echo",
                    "depends_on": ["root"],
                    "required_capabilities": [tag],
                    "input": {"seed": {"$ref": "steps.root.output.seed"}, "branch": b},
                }
                for b in branches
            ),
            {
                "name": "join",
                "type": "echo",
                "depends_on": branches,
                "required_capabilities": [tag],
                "input": {b: {"$ref": f"steps.{b}.output.branch"} for b in branches}
                | {"seed": {"$ref": "steps.b4.output.seed"}},
            },
        ]
    }
    created = await stack.http.post("/v1/plans", headers=auth(key), json=plan)
    assert created.status_code == 202, created.text
    done = await _wait(stack, key, f"/v1/plans/{created.json()['id']}", timeout=120)
    assert done["status"] == "succeeded", done
    assert done["progress"] == "7/7"
    assert _steps(done)["join"]["result"] == {"output": {b: b for b in branches} | {"seed": "r"}}

    runs = await _runs(await stack.temporal(), done["workflow_id"])
    assert len(runs) >= 3, _figures("plan", runs)
    _assert_continued(runs)
    assert sum(r.count(EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED) for r in runs) == 7
    for run in runs:
        # A run closes only once every child it started has finished: nothing is left for the next run.
        assert run.count(EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED) == run.count(
            EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED
        )
    await _assert_each_step_ran_once(stack, key, done, runs)
    await _replay(runs)
    print(_figures("plan of 7, 2 steps per run", runs))


async def test_cancel_after_continue_as_new_cancels_the_running_steps(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack.settings, "composition_steps_per_run", 2)
    _, hang = await stack.register_agent("/hang")
    _, ok = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    quick = [{"name": n, "type": "echo", "input": {"n": n}, "required_capabilities": [ok]} for n in "abcd"]
    slow = {"type": "echo", "required_capabilities": [hang], "timeout_seconds": 120}
    chain = {
        "steps": [*quick, {"name": "slow", **slow}, {"name": "after", "type": "echo", "required_capabilities": [ok]}]
    }
    plan = {
        "steps": [
            quick[0],
            {**quick[1], "depends_on": ["a"]},
            {"name": "slow1", "depends_on": ["b"], **slow},
            {"name": "slow2", "depends_on": ["b"], **slow},
            {"name": "after", "type": "echo", "depends_on": ["slow1", "slow2"], "required_capabilities": [ok]},
        ]
    }
    for path, body, slow_steps in (("/v1/task-chains", chain, ["slow"]), ("/v1/plans", plan, ["slow1", "slow2"])):
        created = await stack.http.post(path, headers=auth(key), json=body)
        assert created.status_code == 202, created.text
        view_path = f"{path}/{created.json()['id']}"
        deadline = asyncio.get_running_loop().time() + 60
        view: dict[str, Any] = {}
        while asyncio.get_running_loop().time() < deadline:
            view = (await stack.http.get(view_path, headers=auth(key))).json()
            if all(_steps(view)[s]["status"] == "running" for s in slow_steps):
                break
            await asyncio.sleep(0.2)
        slow_tasks = [_steps(view)[s]["task_id"] for s in slow_steps]
        for task_id in slow_tasks:
            await stack.wait_for(key, task_id, {"running"})
        client = await stack.temporal()
        before = await _runs(client, view["workflow_id"])
        assert len(before) >= 2, "the running step belongs to a continued run"

        assert (await stack.http.post(f"{view_path}/cancel", headers=auth(key))).status_code == 202
        done = await _wait(stack, key, view_path)
        assert done["status"] == "cancelled", done
        statuses = {s["name"]: s["status"] for s in done["steps"]}
        assert statuses == {
            **{s["name"]: "succeeded" for s in body["steps"] if s["name"] in {"a", "b", "c", "d"}},
            **dict.fromkeys(slow_steps, "cancelled"),
            "after": "cancelled",
        }
        for task_id in slow_tasks:
            assert (await stack.wait_for(key, task_id, timeout=30))["status"] == "cancelled"
        runs = await _runs(client, view["workflow_id"])
        assert [r.run_id for r in runs] == [r.run_id for r in before], "no run after the cancel"
        _assert_continued(runs, final=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED)
        await _replay(runs)


@pytest.fixture
async def big_agent() -> AsyncIterator[RunningServer]:
    """``big`` answers with ``size`` copies of ``char``; ``measure`` reports the sizes of what it was sent."""
    app = FastAPI()

    @app.post("/run")
    async def run(request: Request) -> dict[str, Any]:
        body = await request.body()
        payload = json.loads(body)
        data = payload["input"]
        if payload["type"] == "big":
            return {"output": {"blob": data["char"] * data["size"]}}
        return {"output": {"request_bytes": len(body), **{k: len(v) for k, v in data.items() if isinstance(v, str)}}}

    server = await serve(app)
    try:
        yield server
    finally:
        await server.stop()


async def test_outputs_larger_than_the_inline_limits_flow_by_reference(
    stack: Stack, big_agent: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack.settings, "composition_steps_per_run", 1)
    tag = f"cap-{uuid.uuid4().hex[:10]}"
    registered = await stack.http.post(
        "/v1/agents",
        headers=auth(stack.admin_key),
        json={
            "id": f"agent-{uuid.uuid4().hex[:10]}",
            "display_name": "large outputs",
            "endpoint_url": f"{big_agent.url}/run",
            "capabilities": [{"tag": tag, "version": "1.0"}],
            "max_concurrency": 4,
        },
    )
    assert registered.status_code == 201, registered.text
    key, _ = await stack.new_key()
    plan = {
        "steps": [
            {"name": "big_a", "type": "big", "input": {"char": "a", "size": BIG}, "required_capabilities": [tag]},
            {"name": "big_b", "type": "big", "input": {"char": "b", "size": BIG}, "required_capabilities": [tag]},
            {
                "name": "join",
                "type": "measure",
                "depends_on": ["big_a", "big_b"],
                "required_capabilities": [tag],
                "input": {"a": {"$ref": "steps.big_a.output.blob"}, "b": {"$ref": "steps.big_b.output.blob"}},
            },
        ]
    }
    created = await stack.http.post("/v1/plans", headers=auth(key), json=plan)
    assert created.status_code == 202, created.text
    done = await _wait(stack, key, f"/v1/plans/{created.json()['id']}", timeout=120)
    assert done["status"] == "succeeded", done
    measured = _steps(done)["join"]["result"]["output"]
    # Each output is far above the task input limit, and the input built from both is above Temporal's limit.
    assert BIG > stack.settings.max_task_input_bytes
    assert measured["a"] == BIG and measured["b"] == BIG and measured["request_bytes"] > BLOB_LIMIT

    runs = await _runs(await stack.temporal(), done["workflow_id"])
    assert len(runs) >= 2
    largest = max(r.largest_event() for r in runs)
    assert largest < 16_384, f"an output travelled through the composition's history ({largest} bytes)"
    await _replay(runs)
    # The step's own TaskWorkflow does not carry the agent's answer either: call_agent parks it in the registry.
    step_history = (
        await (await stack.temporal()).get_workflow_handle(f"task-{_steps(done)['big_a']['task_id']}").fetch_history()
    )
    step_largest = max(e.ByteSize() for e in step_history.events)
    assert step_largest < 16_384, f"the agent's answer travelled through the step's history ({step_largest} bytes)"
    assert len(_steps(done)["big_a"]["result"]["output"]["blob"]) == BIG, "the parked answer became the result"
    print(_figures("plan with 1.1 MB outputs", runs), f"; largest event of a step's TaskWorkflow {step_largest} B")
