"""LLM agents, providers, usage, budgets and the plan generator through the real API and workers."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from tests.support.fake_llm import E2E_GROUP, FAKE_KEY_ENV, PLANNER_GROUP, FakeLLMServer
from tests.support.stack import Stack, auth


async def register_llm_agent(stack: Stack, template: str | None = "Summarize: {text}") -> tuple[str, str]:
    tag = f"llm-{uuid.uuid4().hex[:10]}"
    agent_id = f"llm-agent-{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {
        "id": agent_id,
        "display_name": "summarizer on the e2e model group",
        "kind": "llm",
        "model_group": E2E_GROUP,
        "capabilities": [{"tag": tag}],
        "max_concurrency": 10,
    }
    if template is not None:
        body["prompt_template"] = template
    response = await stack.http.post("/v1/agents", headers=auth(stack.admin_key), json=body)
    assert response.status_code == 201, response.text
    view = response.json()
    assert (view["kind"], view["model_group"], view["endpoint_url"]) == ("llm", E2E_GROUP, f"llm://{E2E_GROUP}")
    return agent_id, tag


async def test_providers_are_listed_without_secrets(stack: Stack, fake_llm: FakeLLMServer) -> None:
    key, _ = await stack.new_key()
    response = await stack.http.get("/v1/providers", headers=auth(key))
    assert response.status_code == 200, response.text
    body = response.json()
    groups = {g["name"]: g for g in body["model_groups"]}
    assert set(groups) == {E2E_GROUP, PLANNER_GROUP}
    assert groups[E2E_GROUP]["fallback_order"] == [["e2e-primary"], ["e2e-secondary"]]
    primary = groups[E2E_GROUP]["deployments"][0]
    assert primary["api_key_env"] == FAKE_KEY_ENV and primary["credentials_present"] is True
    assert os.environ[FAKE_KEY_ENV] not in response.text


async def test_task_routed_to_an_llm_agent_end_to_end(stack: Stack, fake_llm: FakeLLMServer) -> None:
    fake_llm.fake.set("e2e-primary", content='{"summary": "AINS is durable."}', prompt_tokens=40, completion_tokens=8)
    agent_id, tag = await register_llm_agent(stack)
    key, client = await stack.new_key()
    task = await stack.submit(key, type=tag, input={"text": "AINS is durable. It runs on Temporal."})
    done = await stack.wait_for(key, task["id"])
    assert done["status"] == "succeeded", done
    assert done["assigned_agent_id"] == agent_id
    result = done["result"]
    assert result["data"] == {"summary": "AINS is durable."}
    assert result["llm"]["deployment_id"] == "e2e-primary" and result["llm"]["model_group"] == E2E_GROUP
    assert result["llm"]["usage"]["total_tokens"] == 48
    sent = fake_llm.fake.calls_for("e2e-primary")[-1]
    assert sent["messages"] == [{"role": "user", "content": "Summarize: AINS is durable. It runs on Temporal."}]
    assert sent["authorization"] == f"Bearer {os.environ[FAKE_KEY_ENV]}"  # the key came from the environment

    usage = await stack.http.get("/v1/usage", headers=auth(key), params={"group_by": ["task"], "task_id": task["id"]})
    assert usage.status_code == 200, usage.text
    (row,) = usage.json()["rows"]
    assert (row["task_id"], row["calls"], row["prompt_tokens"], row["completion_tokens"]) == (task["id"], 1, 40, 8)
    assert row["cost_usd"] == 40 * 0.001 + 8 * 0.002
    by_day = (await stack.http.get("/v1/usage", headers=auth(key))).json()
    assert [r["model_group"] for r in by_day["rows"]] == [E2E_GROUP]  # only this client's calls
    other_key, _ = await stack.new_key()
    assert (await stack.http.get("/v1/usage", headers=auth(other_key))).json()["rows"] == []
    forbidden = await stack.http.get("/v1/usage", headers=auth(other_key), params={"client_id": client})
    assert forbidden.status_code == 403
    admin = await stack.http.get("/v1/usage", headers=auth(stack.admin_key), params={"client_id": client})
    assert admin.json()["total"]["total_tokens"] == 48


async def test_llm_task_falls_back_and_records_the_deployment(stack: Stack, fake_llm: FakeLLMServer) -> None:
    fake_llm.fake.set("e2e-primary", status=500)
    fake_llm.fake.set("e2e-secondary", content="plain text answer")
    try:
        _, tag = await register_llm_agent(stack, template=None)
        key, _ = await stack.new_key()
        task = await stack.submit(key, type=tag, input={"x": 1}, max_attempts=1)
        done = await stack.wait_for(key, task["id"])
    finally:
        fake_llm.fake.set("e2e-primary")
    assert done["status"] == "succeeded", done
    assert done["result"]["text"] == "plain text answer" and "data" not in done["result"]
    assert done["result"]["llm"]["deployment_id"] == "e2e-secondary"
    assert done["result"]["llm"]["provider"] == "fake-b"


async def test_budget_refusal_fails_the_task_with_budget_exceeded(stack: Stack, fake_llm: FakeLLMServer) -> None:
    fake_llm.fake.set("e2e-primary")
    _, tag = await register_llm_agent(stack)
    key, client = await stack.new_key()
    put = await stack.http.put(f"/v1/budgets/{client}", headers=auth(stack.admin_key), json={"daily_limit_usd": 0.001})
    assert put.status_code == 200, put.text
    assert (
        await stack.http.put(f"/v1/budgets/{client}", headers=auth(key), json={"daily_limit_usd": 9})
    ).status_code == 403
    calls_before = len(fake_llm.fake.calls_for("e2e-primary"))

    task = await stack.submit(key, type=tag, input={"text": "too expensive"}, max_attempts=1)
    done = await stack.wait_for(key, task["id"])
    assert done["status"] == "failed", done
    assert done["error_code"] == "budget_exceeded"
    assert f"daily LLM budget of client '{client}'" in done["error"] and "limit $0.001" in done["error"]
    assert len(fake_llm.fake.calls_for("e2e-primary")) == calls_before  # refused before the call

    view = await stack.http.get(f"/v1/budgets/{client}", headers=auth(key))
    assert view.status_code == 200 and view.json()["daily_limit_usd"] == 0.001 and view.json()["spent_usd"] == 0
    other_key, _ = await stack.new_key()
    assert (await stack.http.get(f"/v1/budgets/{client}", headers=auth(other_key))).status_code == 403


def plan_answer(steps: list[dict[str, Any]]) -> str:
    return "```json\n" + json.dumps({"name": "generated", "steps": steps}) + "\n```"


async def test_plan_generated_from_a_canned_model_answer(stack: Stack, fake_llm: FakeLLMServer) -> None:
    _, fetch = await stack.register_agent()
    _, summarize = await stack.register_agent()
    fake_llm.fake.set(
        "planner",
        content=plan_answer(
            [
                {"name": "fetch", "type": fetch, "input": {"url": "https://example.com"}},
                {
                    "name": "summarize",
                    "type": summarize,
                    "input": {"text": {"$ref": "steps.fetch.output.body"}},
                    "depends_on": ["fetch"],
                },
            ]
        ),
    )
    key, _ = await stack.new_key()
    response = await stack.http.post(
        "/v1/plans/generate", headers=auth(key), json={"goal": "summarize example.com", "model_group": PLANNER_GROUP}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"] is True and body["problems"] == []
    assert [s["name"] for s in body["plan"]["steps"]] == ["fetch", "summarize"]
    assert body["plan"]["steps"][1]["depends_on"] == ["fetch"]
    assert {fetch, summarize} <= set(body["offered_capabilities"])
    assert body["llm"]["deployment_id"] == "planner-1" and body["started"] is False
    prompt = fake_llm.fake.calls_for("planner")[-1]["messages"]
    assert fetch in prompt[0]["content"] and prompt[1]["content"] == "Goal: summarize example.com"

    # start: true runs a valid plan at once, exactly as POST /v1/plans would.
    started = await stack.http.post(
        "/v1/plans/generate",
        headers=auth(key),
        json={"goal": "summarize example.com", "model_group": PLANNER_GROUP, "start": True},
    )
    assert started.status_code == 200, started.text
    assert started.json()["started"] is True and started.json()["plan_id"]
    plan_view = await stack.http.get(f"/v1/plans/{started.json()['plan_id']}", headers=auth(key))
    assert plan_view.status_code == 200 and [s["name"] for s in plan_view.json()["steps"]] == ["fetch", "summarize"]

    # A step needing a capability nobody offers comes back for review, marked invalid.
    fake_llm.fake.set("planner", content=plan_answer([{"name": "x", "type": "nobody-offers-this"}]))
    review = await stack.http.post(
        "/v1/plans/generate", headers=auth(key), json={"goal": "g", "start": True, "model_group": PLANNER_GROUP}
    )
    assert review.status_code == 200, review.text
    assert review.json()["valid"] is False and review.json()["started"] is False
    assert [p["code"] for p in review.json()["problems"]] == ["unknown_capability"]


async def test_cyclic_or_malformed_generated_plans_are_rejected(stack: Stack, fake_llm: FakeLLMServer) -> None:
    _, tag = await stack.register_agent()
    key, _ = await stack.new_key()
    fake_llm.fake.set(
        "planner",
        content=plan_answer(
            [
                {"name": "a", "type": tag, "depends_on": ["b"]},
                {"name": "b", "type": tag, "depends_on": ["a"]},
            ]
        ),
    )
    response = await stack.http.post(
        "/v1/plans/generate", headers=auth(key), json={"goal": "loop", "start": True, "model_group": PLANNER_GROUP}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_generated_plan" and "dependency cycle" in error["message"]
    assert [e["code"] for e in error["details"]["errors"]] == ["cycle"]

    fake_llm.fake.set("planner", content="Sure! Here is a plan: step 1, step 2.")
    response = await stack.http.post(
        "/v1/plans/generate", headers=auth(key), json={"goal": "g", "model_group": PLANNER_GROUP}
    )
    assert response.status_code == 422 and response.json()["error"]["details"]["errors"][0]["code"] == "invalid_json"

    fake_llm.fake.set("planner", content=json.dumps({"steps": [{"name": "a", "type": tag, "depends_on": "b"}]}))
    response = await stack.http.post(
        "/v1/plans/generate", headers=auth(key), json={"goal": "g", "model_group": PLANNER_GROUP}
    )
    assert response.status_code == 422 and response.json()["error"]["details"]["errors"][0]["code"] == "schema"

    unknown = await stack.http.post("/v1/plans/generate", headers=auth(key), json={"goal": "g", "model_group": "nope"})
    assert unknown.status_code == 422 and "not configured" in unknown.json()["error"]["message"]


async def test_llm_call_over_the_tasks_deadline_is_a_timeout(stack: Stack, fake_llm: FakeLLMServer) -> None:
    """The task's timeout_seconds bounds an LLM call too: timed_out (-0.03), the message naming that deadline."""
    fake_llm.fake.set("e2e-primary", delay_seconds=4)
    try:
        agent_id, tag = await register_llm_agent(stack)
        key, _ = await stack.new_key()
        task = await stack.submit(key, type=tag, input={"text": "x"}, max_attempts=1, timeout_seconds=1)
        done = await stack.wait_for(key, task["id"])
    finally:
        fake_llm.fake.set("e2e-primary")
    assert done["status"] == "timed_out", done
    assert done["error_code"] == "agent_timeout"
    assert "did not answer within 1s (the task's timeout_seconds)" in done["status_reason"]
    records = (await stack.trust(agent_id))["records"]
    assert [(r["event_type"], round(r["delta"], 6)) for r in records] == [("timeout", -0.03)]
