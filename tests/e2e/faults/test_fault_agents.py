"""Agents that answer slowly, error, hang, or close the connection mid-response."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.e2e.faults.faultkit import MidResponseCloser, ledger
from tests.support.stack import Stack


async def _register(stack: Stack, url: str, tag: str) -> str:
    agent_id, _ = await stack.register_agent(tag=tag, endpoint_url=url)
    return agent_id


async def _run_one(stack: Stack, path: str, **task: Any) -> tuple[str, dict[str, Any]]:
    agent_id, tag = await stack.register_agent(path)
    key, _ = await stack.new_key()
    submitted = await stack.submit(key, type="echo", required_capabilities=[tag], max_attempts=1, **task)
    return agent_id, await stack.wait_for(key, submitted["id"], timeout=30)


@pytest.mark.parametrize(
    ("path", "task", "status", "code", "reason", "event", "delta"),
    [
        ("/fail", {"timeout_seconds": 5}, "failed", "agent_error", "HTTP 500", "failure", -0.05),
        ("/hang", {"timeout_seconds": 1}, "timed_out", "agent_timeout", "did not answer within 1s", "timeout", -0.03),
        (
            "/run",
            {"timeout_seconds": 1, "input": {"delay_seconds": 3}},
            "timed_out",
            "agent_timeout",
            "did not answer within 1s",
            "timeout",
            -0.03,
        ),
    ],
    ids=["errors", "hangs", "too-slow"],
)
async def test_bad_agent_fails_task_with_status_and_reason(
    stack: Stack, path: str, task: dict[str, Any], status: str, code: str, reason: str, event: str, delta: float
) -> None:
    agent_id, done = await _run_one(stack, path, **task)
    assert done["status"] == status, done
    assert done["error_code"] == code, done
    assert reason in (done["status_reason"] or ""), done
    assert done["attempts"] == 1
    trust = await stack.trust(agent_id)
    assert [(r["event_type"], round(r["delta"], 6)) for r in trust["records"]] == [(event, delta)]


async def test_slow_agent_within_timeout_succeeds(stack: Stack) -> None:
    _, done = await _run_one(stack, "/run", timeout_seconds=5, input={"delay_seconds": 1.2, "v": 1})
    assert done["status"] == "succeeded", done
    assert done["result"] == {"output": {"delay_seconds": 1.2, "v": 1}}


async def test_agent_closing_mid_response_fails_with_reason(stack: Stack) -> None:
    closer = await MidResponseCloser().start()
    try:
        tag = f"cap-{uuid.uuid4().hex[:10]}"
        agent_id = await _register(stack, closer.url, tag)
        key, _ = await stack.new_key()
        submitted = await stack.submit(key, type="echo", required_capabilities=[tag], max_attempts=1)
        done = await stack.wait_for(key, submitted["id"], timeout=30)
        assert done["status"] == "failed", done
        assert done["error_code"] == "agent_error", done
        assert "agent unreachable" in (done["status_reason"] or ""), done
        assert closer.requests == 1, "an agent failure is re-routed by the workflow, never retried blindly"
        trust = await stack.trust(agent_id)
        assert [r["event_type"] for r in trust["records"]] == ["failure"]
    finally:
        await closer.stop()


async def test_agent_closing_mid_response_is_rerouted_to_a_healthy_agent(stack: Stack) -> None:
    hold = asyncio.Event()
    closer = await MidResponseCloser(hold).start()
    try:
        tag = f"cap-{uuid.uuid4().hex[:10]}"
        bad = await _register(stack, closer.url, tag)
        key, _ = await stack.new_key()
        submitted = await stack.submit(key, type="echo", input={"v": 3}, required_capabilities=[tag], max_attempts=2)
        await asyncio.wait_for(closer.received.wait(), 20)  # attempt 1 is at the bad agent, the only one
        good = await _register(stack, f"{stack.demo_url}/run", tag)
        hold.set()
        done = await stack.wait_for(key, submitted["id"], timeout=30)
        assert done["status"] == "succeeded", done
        assert done["assigned_agent_id"] == good
        assert done["attempts"] == 2
        assert done["result"] == {"output": {"v": 3}}
        book = await ledger(stack.db, [submitted["id"]])
        assert sorted(book["attempts"]) == [
            (submitted["id"], 1, bad, "failed"),
            (submitted["id"], 2, good, "succeeded"),
        ]
        assert sorted((a, agent, e) for _, a, agent, e in book["records"]) == [
            (1, bad, "failure"),
            (2, good, "success"),
        ]
        assert closer.requests == 1
    finally:
        await closer.stop()
