"""Chains and plans end to end: data flowing forward, parallel branches, skipped dependents, cancel."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from tests.support.stack import Stack, auth

FINAL = {"succeeded", "failed", "cancelled"}


async def _wait(
    stack: Stack, key: str, path: str, statuses: set[str] | None = None, timeout: float = 45
) -> dict[str, Any]:
    wanted = statuses or FINAL
    deadline = asyncio.get_running_loop().time() + timeout
    body: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        response = await stack.http.get(path, headers=auth(key))
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in wanted:
            return body
        await asyncio.sleep(0.2)
    raise AssertionError(f"{path} did not reach {wanted}: {body}")


def _steps(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in view["steps"]}


async def test_three_step_chain_passes_data_forward(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    caps = [tag]
    chain = {
        "name": "shout and count",
        "steps": [
            {
                "name": "extract",
                "type": "echo",
                "input": {"text": "hello brave new world"},
                "required_capabilities": caps,
            },
            {"name": "shout", "type": "uppercase", "required_capabilities": caps},
            {
                "name": "count",
                "type": "word_count",
                "required_capabilities": caps,
                "pass_output": False,
                "input": {"text": {"$ref": "steps.shout.output.text"}},
            },
        ],
    }
    created = await stack.http.post("/v1/task-chains", headers=auth(key), json=chain)
    assert created.status_code == 202, created.text
    chain_id = created.json()["id"]
    done = await _wait(stack, key, f"/v1/task-chains/{chain_id}")
    assert done["status"] == "succeeded" and done["progress"] == "3/3"
    steps = _steps(done)
    assert steps["shout"]["result"] == {"output": {"text": "HELLO BRAVE NEW WORLD"}}, "extract's output merged in"
    assert steps["count"]["result"] == {"output": {"words": 4}}
    task = (await stack.http.get(f"/v1/tasks/{steps['count']['task_id']}", headers=auth(key))).json()
    assert task["input"] == {"text": "HELLO BRAVE NEW WORLD"}
    order = [steps[n]["started_at"] for n in ("extract", "shout", "count")]
    assert order == sorted(order)
    other, _ = await stack.new_key()
    assert (await stack.http.get(f"/v1/task-chains/{chain_id}", headers=auth(other))).status_code == 404


async def test_chain_failure_policies_stop_and_skip(stack: Stack) -> None:
    _, ok = await stack.register_agent("/run")
    _, bad = await stack.register_agent("/fail")
    key, _ = await stack.new_key()
    stop = {
        "steps": [
            {"name": "a", "type": "echo", "input": {"v": 1}, "required_capabilities": [ok]},
            {"name": "b", "type": "echo", "required_capabilities": [bad], "max_attempts": 1},
            {"name": "c", "type": "echo", "required_capabilities": [ok]},
        ]
    }
    stopped = (await stack.http.post("/v1/task-chains", headers=auth(key), json=stop)).json()
    done = await _wait(stack, key, f"/v1/task-chains/{stopped['id']}")
    assert done["status"] == "failed"
    assert [s["status"] for s in done["steps"]] == ["succeeded", "failed", "skipped"]
    assert "stopped at b" in _steps(done)["c"]["reason"]

    skip = {"steps": [dict(s) for s in stop["steps"]]}
    skip["steps"][1]["on_failure"] = "skip"
    skipped = (await stack.http.post("/v1/task-chains", headers=auth(key), json=skip)).json()
    done = await _wait(stack, key, f"/v1/task-chains/{skipped['id']}")
    assert done["status"] == "succeeded"
    steps = _steps(done)
    assert [s["status"] for s in done["steps"]] == ["succeeded", "failed", "succeeded"]
    assert steps["c"]["result"] == {"output": {"v": 1}}, "the last successful output flows past the skipped step"


async def test_diamond_plan_runs_middle_steps_in_parallel(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run", max_concurrency=10)
    key, _ = await stack.new_key()
    plan = {
        "steps": [
            {"name": "start", "type": "echo", "input": {"text": "a b c"}, "required_capabilities": [tag]},
            {
                "name": "left",
                "type": "echo",
                "depends_on": ["start"],
                "required_capabilities": [tag],
                "input": {"delay_seconds": 1.5, "text": {"$ref": "steps.start.output.text"}},
            },
            {
                "name": "right",
                "type": "echo",
                "depends_on": ["start"],
                "required_capabilities": [tag],
                "input": {"delay_seconds": 1.5, "n": 2},
            },
            {
                "name": "join",
                "type": "echo",
                "depends_on": ["left", "right"],
                "required_capabilities": [tag],
                "input": {"l": {"$ref": "steps.left.output.text"}, "r": {"$ref": "steps.right.output.n"}},
            },
        ]
    }
    created = await stack.http.post("/v1/plans", headers=auth(key), json=plan)
    assert created.status_code == 202, created.text
    done = await _wait(stack, key, f"/v1/plans/{created.json()['id']}", timeout=60)
    assert done["status"] == "succeeded", done
    steps = _steps(done)
    assert steps["join"]["result"] == {"output": {"l": "a b c", "r": 2}}
    left = [datetime.fromisoformat(steps["left"][k]) for k in ("started_at", "completed_at")]
    right = [datetime.fromisoformat(steps["right"][k]) for k in ("started_at", "completed_at")]
    assert left[0] < right[1] and right[0] < left[1], "the two middle steps overlapped in time"
    assert steps["join"]["depends_on"] == ["left", "right"]


async def test_failing_branch_skips_only_its_dependents(stack: Stack) -> None:
    _, ok = await stack.register_agent("/run")
    _, bad = await stack.register_agent("/fail")
    key, _ = await stack.new_key()
    plan = {
        "steps": [
            {"name": "root", "type": "echo", "required_capabilities": [ok]},
            {
                "name": "broken",
                "type": "echo",
                "depends_on": ["root"],
                "required_capabilities": [bad],
                "max_attempts": 1,
            },
            {"name": "after_broken", "type": "echo", "depends_on": ["broken"], "required_capabilities": [ok]},
            {"name": "independent", "type": "echo", "depends_on": ["root"], "required_capabilities": [ok]},
        ]
    }
    created = (await stack.http.post("/v1/plans", headers=auth(key), json=plan)).json()
    done = await _wait(stack, key, f"/v1/plans/{created['id']}")
    steps = _steps(done)
    assert done["status"] == "failed"
    assert steps["broken"]["status"] == "failed"
    assert steps["after_broken"]["status"] == "skipped" and "broken failed" in steps["after_broken"]["reason"]
    assert steps["independent"]["status"] == "succeeded"


async def test_invalid_plans_are_rejected_before_anything_starts(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    cyclic = {
        "steps": [
            {"name": "a", "type": "echo", "depends_on": ["c"], "required_capabilities": [tag]},
            {"name": "b", "type": "echo", "depends_on": ["a"], "required_capabilities": [tag]},
            {"name": "c", "type": "echo", "depends_on": ["b"], "required_capabilities": [tag]},
        ]
    }
    response = await stack.http.post("/v1/plans", headers=auth(key), json=cyclic)
    assert response.status_code == 422
    error = response.json()["error"]
    assert "cycle" in error["message"] and "a -> c -> b -> a" in error["message"]
    assert error["details"][0]["code"] == "cycle"
    cases = [
        ({"steps": [{"name": "a", "type": "echo", "required_capabilities": [tag]}] * 2}, "duplicate_step"),
        (
            {"steps": [{"name": "a", "type": "echo", "depends_on": ["zz"], "required_capabilities": [tag]}]},
            "unknown_dependency",
        ),
        (
            {"steps": [{"name": "a", "type": "echo", "required_capabilities": ["nobody-offers-this"]}]},
            "unknown_capability",
        ),
        (
            {
                "steps": [
                    {
                        "name": "a",
                        "type": "echo",
                        "required_capabilities": [tag],
                        "input": {"x": {"$ref": "steps.q.output"}},
                    }
                ]
            },
            "unknown_reference",
        ),
    ]
    for body, code in cases:
        response = await stack.http.post("/v1/plans", headers=auth(key), json=body)
        assert response.status_code == 422, response.text
        assert code in [d["code"] for d in response.json()["error"]["details"]]
    too_big = {"steps": [{"name": f"s{i}", "type": "echo"} for i in range(stack.settings.max_plan_steps + 1)]}
    response = await stack.http.post("/v1/plans", headers=auth(key), json=too_big)
    assert response.status_code == 422
    assert "too_many_steps" in [d["code"] for d in response.json()["error"]["details"]]


async def test_cancelling_a_chain_and_a_plan_cancels_the_running_step(stack: Stack) -> None:
    _, hang = await stack.register_agent("/hang")
    _, ok = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    for path, body in (
        (
            "/v1/task-chains",
            {
                "steps": [
                    {"name": "slow", "type": "echo", "required_capabilities": [hang], "timeout_seconds": 120},
                    {"name": "next", "type": "echo", "required_capabilities": [ok]},
                ]
            },
        ),
        (
            "/v1/plans",
            {
                "steps": [
                    {"name": "slow", "type": "echo", "required_capabilities": [hang], "timeout_seconds": 120},
                    {"name": "next", "type": "echo", "depends_on": ["slow"], "required_capabilities": [ok]},
                ]
            },
        ),
    ):
        created = (await stack.http.post(path, headers=auth(key), json=body)).json()
        view_path = f"{path}/{created['id']}"
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            view = (await stack.http.get(view_path, headers=auth(key))).json()
            if _steps(view)["slow"]["status"] == "running" or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        slow_task = _steps(view)["slow"]["task_id"]
        await stack.wait_for(key, slow_task, {"running"})
        assert (await stack.http.post(f"{view_path}/cancel", headers=auth(key))).status_code == 202
        done = await _wait(stack, key, view_path)
        assert done["status"] == "cancelled"
        assert [s["status"] for s in done["steps"]] == ["cancelled", "cancelled"]
        assert (await stack.wait_for(key, slow_task, timeout=20))["status"] == "cancelled"
        assert (await stack.http.post(f"{view_path}/cancel", headers=auth(key))).status_code == 409
