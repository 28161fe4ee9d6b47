"""Agent calls honour the task's own deadline (timeout_seconds), not an HTTP client default.

Real agents on 127.0.0.1: the demo agent's /run answers after ``input.delay_seconds``, /hang never answers.
A call over the task's deadline is a timeout (-0.03), never a failure; a refused connection is a failure.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.e2e.faults.faultkit import dead_port
from tests.support.receivers import webhook_receiver
from tests.support.stack import Stack, auth


async def _timed_run(stack: Stack, path: str, **task: Any) -> tuple[str, dict[str, Any], float]:
    """Submit one single-attempt task to a fresh agent at ``path``; (agent id, final task, seconds to finish)."""
    agent_id, tag = await stack.register_agent(path)
    key, _ = await stack.new_key()
    started = time.monotonic()
    submitted = await stack.submit(key, type="echo", required_capabilities=[tag], max_attempts=1, **task)
    done = await stack.wait_for(key, submitted["id"], timeout=task.get("timeout_seconds", 30) + 30)
    return agent_id, done, time.monotonic() - started


async def _trust_events(stack: Stack, agent_id: str) -> list[tuple[str, float]]:
    return [(r["event_type"], round(r["delta"], 6)) for r in (await stack.trust(agent_id))["records"]]


async def test_agent_answering_after_7s_within_the_tasks_deadline_succeeds(stack: Stack) -> None:
    """Beyond an HTTP client's usual 5 s default and within the task's 30 s: a success (+0.02), not a ReadTimeout."""
    slow, too_slow = await asyncio.gather(
        _timed_run(stack, "/run", timeout_seconds=30, input={"delay_seconds": 7, "v": 1}),
        _timed_run(stack, "/run", timeout_seconds=3, input={"delay_seconds": 7, "v": 2}),
    )
    agent_id, done, seconds = slow
    assert done["status"] == "succeeded", done
    assert done["result"] == {"output": {"delay_seconds": 7, "v": 1}}
    assert seconds >= 7
    assert await _trust_events(stack, agent_id) == [("success", 0.02)]

    agent_id, done, seconds = too_slow
    assert done["status"] == "timed_out", done
    assert done["error_code"] == "agent_timeout", done
    assert "did not answer within 3s (the task's timeout_seconds)" in done["status_reason"], done
    assert 3 <= seconds < 6.5, f"the 3 s deadline fired after {seconds:.1f}s"
    assert await _trust_events(stack, agent_id) == [("timeout", -0.03)]


async def test_refused_connection_is_a_failure_not_a_timeout(stack: Stack) -> None:
    agent_id, tag = await stack.register_agent()
    response = await stack.http.patch(
        f"/v1/agents/{agent_id}",
        headers=auth(stack.admin_key),
        json={"endpoint_url": f"http://127.0.0.1:{dead_port()}/run"},
    )
    assert response.status_code == 200, response.text
    await asyncio.sleep(stack.settings.routing_cache_ttl_seconds + 0.5)  # the routing snapshot sees the new URL
    key, _ = await stack.new_key()
    submitted = await stack.submit(key, type="echo", required_capabilities=[tag], max_attempts=1, timeout_seconds=20)
    done = await stack.wait_for(key, submitted["id"], timeout=30)
    assert done["status"] == "failed", done
    assert done["error_code"] == "agent_error", done
    assert "agent unreachable: cannot connect to 127.0.0.1:" in done["status_reason"], done
    assert await _trust_events(stack, agent_id) == [("failure", -0.05)]


@pytest.mark.slow
async def test_long_calls_run_to_the_tasks_deadline_and_keep_heartbeating(stack: Stack) -> None:
    """A 70 s call inside a 120 s deadline succeeds (its activity heartbeats every 0.5 s against a 2 s
    heartbeat timeout here, so a missing heartbeat would have cut it); a call that never answers ends
    timed_out at its 20 s deadline, with exactly one trust record. One backend is enough: the deadlines are
    the worker's whatever the registry, and 70 s more in both test processes would lengthen the suite."""
    if stack.backend != "sqlite":
        pytest.skip("agent-call deadlines do not depend on the registry backend")
    long_call, hung = await asyncio.gather(
        _timed_run(stack, "/run", timeout_seconds=120, input={"delay_seconds": 70}),
        _timed_run(stack, "/hang", timeout_seconds=20),
    )
    agent_id, done, seconds = long_call
    assert done["status"] == "succeeded", done
    assert done["attempts"] == 1 and seconds >= 70
    assert await _trust_events(stack, agent_id) == [("success", 0.02)]

    agent_id, done, seconds = hung
    assert done["status"] == "timed_out", done
    assert done["error_code"] == "agent_timeout", done
    assert "did not answer within 20s" in done["status_reason"], done
    assert 20 <= seconds < 26, f"the 20 s deadline fired after {seconds:.1f}s"
    assert await _trust_events(stack, agent_id) == [("timeout", -0.03)]


async def test_webhook_receiver_slower_than_its_timeout_is_retried_not_hung(stack: Stack) -> None:
    """The receiver holds the first delivery past AINS_WEBHOOK_REQUEST_TIMEOUT_SECONDS (2 s here): that
    attempt is recorded as timed out and the next one delivers."""
    key, _ = await stack.new_key()
    _, tag = await stack.register_agent()
    limit = stack.settings.webhook_request_timeout_seconds
    async with webhook_receiver(stall_first=1, stall_seconds=limit + 10) as receiver:
        response = await stack.http.post(
            "/v1/webhooks", headers=auth(key), json={"url": receiver.url, "event_types": ["task.succeeded"]}
        )
        assert response.status_code == 201, response.text
        task = await stack.submit(key, required_capabilities=[tag])
        await stack.wait_for(key, task["id"], {"succeeded"})
        delivered = await receiver.wait_for(1, timeout=limit + 25)
        assert len(delivered) == 1
        assert [r.answered for r in receiver.requests] == [0, 200]
        page = await stack.http.get(
            "/v1/webhooks/deliveries", headers=auth(key), params={"webhook_id": response.json()["id"]}
        )
        (delivery,) = page.json()["items"]
        detail = (await stack.http.get(f"/v1/webhooks/deliveries/{delivery['id']}", headers=auth(key))).json()
        first, second = detail["attempt_log"]
        assert f"did not answer within {limit:g}s" in first["error"], first
        assert first["latency_ms"] < (limit + 5) * 1000, "cut at the timeout, not held for the receiver's 12 s"
        assert second["status_code"] == 200
