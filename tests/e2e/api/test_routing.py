"""Routing and trust end to end: receipts, filters, waiting, leaderboard, overrides, health checks."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import func, select

from ains.core.tasks.attempts import record_attempt
from ains.models.health import HealthCheckInput, HealthCheckResult
from ains.models.tables import TrustRecord
from ains.models.workflow_io import AgentCallResult, AttemptRecord, CallOutcome
from tests.support.servers import bound_socket
from tests.support.stack import Stack, auth


async def test_routing_receipt_explains_every_candidate(stack: Stack) -> None:
    good, tag = await stack.register_agent("/run")
    unavailable, _ = await stack.register_agent("/run", tag=tag)
    excluded, _ = await stack.register_agent("/run", tag=tag)
    await stack.mark_unavailable(unavailable)
    key, _ = await stack.new_key()
    task = await stack.submit(
        key, required_capabilities=[tag], exclude_agents=[excluded], routing_strategy="round_robin"
    )
    done = await stack.wait_for(key, task["id"])
    assert done["status"] == "succeeded" and done["assigned_agent_id"] == good
    assert done["routing_strategy"] == "round_robin" and done["exclude_agents"] == [excluded]

    routing = (await stack.http.get(f"/v1/tasks/{task['id']}/routing", headers=auth(key))).json()
    [receipt] = routing["receipts"]
    assert receipt["attempt"] == 1 and receipt["outcome"] == "assigned" and receipt["winner_agent_id"] == good
    assert receipt["strategy"] == "round_robin"
    assert receipt["candidates_total"] == 3
    by_agent = {c["agent_id"]: c for c in receipt["candidates"]}
    assert by_agent[good]["eliminated_by"] is None and by_agent[good]["score"] is not None
    assert by_agent[unavailable]["eliminated_by"] == "unavailable"
    assert by_agent[excluded]["eliminated_by"] == "excluded"
    assert receipt["duration_ms"] > 0
    other, _ = await stack.new_key()
    assert (await stack.http.get(f"/v1/tasks/{task['id']}/routing", headers=auth(other))).status_code == 404


async def test_min_trust_that_no_agent_meets_fails_fast_with_the_reason(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    task = await stack.submit(key, required_capabilities=[tag], min_trust=0.9)
    done = await stack.wait_for(key, task["id"], timeout=10)
    assert done["status"] == "failed" and done["error_code"] == "no_capable_agent"
    assert "min trust" in done["error"] or "min_trust" in done["error"]


async def test_version_constraints_route_only_to_matching_versions(stack: Stack) -> None:
    tag = f"cap-{uuid.uuid4().hex[:8]}"
    old, _ = await stack.register_agent("/run", tag=tag)
    new_id = f"agent-{uuid.uuid4().hex[:8]}"
    response = await stack.http.post(
        "/v1/agents",
        headers=auth(stack.admin_key),
        json={
            "id": new_id,
            "display_name": "v2",
            "endpoint_url": f"{stack.demo_url}/run",
            "capabilities": [{"tag": tag, "version": "2.3"}],
        },
    )
    assert response.status_code == 201
    key, _ = await stack.new_key()
    task = await stack.submit(key, required_capabilities=[f"{tag}>=2.0"])
    done = await stack.wait_for(key, task["id"])
    assert done["assigned_agent_id"] == new_id
    receipt = (await stack.http.get(f"/v1/tasks/{task['id']}/routing", headers=auth(key))).json()["receipts"][0]
    assert {c["agent_id"]: c["eliminated_by"] for c in receipt["candidates"]}[old] == "version"


async def test_busy_agents_make_the_task_wait_then_fail_after_its_queue_timeout(stack: Stack) -> None:
    _, tag = await stack.register_agent("/hang", max_concurrency=1)
    key, _ = await stack.new_key()
    blocker = await stack.submit(key, required_capabilities=[tag], timeout_seconds=60, max_attempts=1)
    await stack.wait_for(key, blocker["id"], {"running"})
    waiting = await stack.submit(key, required_capabilities=[tag], queue_timeout_seconds=2)
    routing = await stack.wait_for(key, waiting["id"], {"routing"}, timeout=5)
    assert "waiting for an agent" in routing["status_reason"] and "at capacity" in routing["status_reason"]
    done = await stack.wait_for(key, waiting["id"], timeout=15)
    assert done["status"] == "failed" and done["error_code"] == "no_agent_available"
    assert "within 2s" in done["error"]
    await stack.http.post(f"/v1/tasks/{blocker['id']}/cancel", headers=auth(key))
    await stack.wait_for(key, blocker["id"])


async def test_waiting_task_starts_when_the_agent_frees_up(stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/run", max_concurrency=1)
    key, _ = await stack.new_key()
    first = await stack.submit(key, type="echo", input={"delay_seconds": 1}, required_capabilities=[tag])
    await stack.wait_for(key, first["id"], {"running"})
    second = await stack.submit(key, type="echo", input={"n": 2}, required_capabilities=[tag], queue_timeout_seconds=30)
    done = await stack.wait_for(key, second["id"], timeout=20)
    assert done["status"] == "succeeded" and done["assigned_agent_id"] == agent_id
    first_done = await stack.wait_for(key, first["id"])
    assert first_done["completed_at"] <= done["started_at"], "max_concurrency 1 was respected"


async def test_leaderboard_orders_by_trust_and_filters_by_tier_and_tag(stack: Stack) -> None:
    tag = f"lb-{uuid.uuid4().hex[:8]}"
    ids = [(await stack.register_agent("/run", tag=tag))[0] for _ in range(3)]
    scores = {ids[0]: 0.95, ids[1]: 0.75, ids[2]: 0.2}
    for agent_id, score in scores.items():
        response = await stack.http.post(
            f"/v1/agents/{agent_id}/trust", headers=auth(stack.admin_key), json={"score": score, "reason": "seed test"}
        )
        assert response.status_code == 201, response.text
    board = (await stack.http.get("/v1/trust/leaderboard", headers=auth(stack.admin_key), params={"limit": 500})).json()
    ours = [e for e in board["entries"] if e["agent_id"] in scores]
    assert [e["agent_id"] for e in ours] == ids
    assert [e["trust_tier"] for e in ours] == ["excellent", "good", "poor"]
    ranks = [e["rank"] for e in board["entries"]]
    assert ranks == list(range(1, len(ranks) + 1))
    scores_in_order = [e["trust_score"] for e in board["entries"]]
    assert scores_in_order == sorted(scores_in_order, reverse=True)
    excellent = (
        await stack.http.get(
            "/v1/trust/leaderboard", headers=auth(stack.admin_key), params={"tier": "excellent", "limit": 500}
        )
    ).json()
    assert ids[0] in [e["agent_id"] for e in excellent["entries"]]
    assert all(e["trust_tier"] == "excellent" for e in excellent["entries"])
    by_tag = (await stack.http.get("/v1/trust/leaderboard", headers=auth(stack.admin_key), params={"tag": tag})).json()
    assert sorted(e["agent_id"] for e in by_tag["entries"]) == sorted(ids)
    assert all(e["tag_trust_score"] == pytest.approx(0.5) for e in by_tag["entries"])
    bad = await stack.http.get("/v1/trust/leaderboard", headers=auth(stack.admin_key), params={"tier": "legendary"})
    assert bad.status_code == 422


async def test_trust_override_is_audited_and_admin_only(stack: Stack) -> None:
    agent_id, _ = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    denied = await stack.http.post(f"/v1/agents/{agent_id}/trust", headers=auth(key), json={"score": 1, "reason": "me"})
    assert denied.status_code == 403
    invalid = await stack.http.post(
        f"/v1/agents/{agent_id}/trust", headers=auth(stack.admin_key), json={"score": 1.5, "reason": "too high"}
    )
    assert invalid.status_code == 422
    done = await stack.http.post(
        f"/v1/agents/{agent_id}/trust",
        headers=auth(stack.admin_key),
        json={"score": 0.8, "reason": "manual review passed"},
    )
    assert done.status_code == 201
    trust = await stack.trust(agent_id)
    assert trust["trust_score"] == pytest.approx(0.8) and trust["trust_tier"] == "good"
    [record] = trust["records"]
    assert record["event_type"] == "override" and record["task_id"] is None
    assert (record["score_before"], record["score_after"], record["delta"]) == (0.5, 0.8, pytest.approx(0.3))
    assert "manual review passed" in record["reason"] and "admin" in record["reason"]
    assert trust["trend"]["direction"] == "rising"


async def test_per_capability_trust_moves_with_tasks_for_that_tag(stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    for _ in range(2):
        task = await stack.submit(key, required_capabilities=[tag])
        await stack.wait_for(key, task["id"])
    trust = await stack.trust(agent_id)
    [cap] = trust["capabilities"]
    assert cap["tag"] == tag and cap["total_tasks"] == 2 and cap["success_rate"] == 1.0
    assert cap["trust_score"] == pytest.approx(0.55)  # +0.02, then +0.03 with the >0.95 bonus
    assert trust["trust_score"] == pytest.approx(0.55)
    assert cap["used_for_routing"] is False


async def test_recording_an_attempt_twice_writes_one_trust_record(stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    task = await stack.submit(key, required_capabilities=[tag])
    await stack.wait_for(key, task["id"])
    replay = AttemptRecord(
        task_id=task["id"],
        attempt=1,
        agent_id=agent_id,
        result=AgentCallResult(outcome=CallOutcome.FAILURE, error="late duplicate", duration_ms=1.0),
        task_status="failed",
    )
    async with stack.db.transaction() as session:
        applied = await record_attempt(session, replay)
    assert applied is False
    async with stack.db.session() as session:
        count = (
            await session.execute(
                select(func.count()).select_from(TrustRecord).where(TrustRecord.task_id == task["id"])
            )
        ).scalar_one()
    assert count == 1
    trust = await stack.trust(agent_id)
    assert trust["trust_score"] == pytest.approx(0.52)
    assert (await stack.wait_for(key, task["id"]))["status"] == "succeeded"


async def test_health_check_marks_silent_agents_unavailable_and_heartbeat_revives(stack: Stack) -> None:
    dead = bound_socket()
    try:
        silent, tag = await stack.register_agent("/run", health_url=f"http://127.0.0.1:{dead.getsockname()[1]}/health")
        healthy, _ = await stack.register_agent("/run", health_url=f"{stack.demo_url}/health", tag=tag)
        client = await stack.temporal()
        result = await client.execute_workflow(
            "AgentHealthWorkflow",
            HealthCheckInput(timeout_seconds=1, heartbeat_ttl_seconds=0),
            id=f"health-{uuid.uuid4().hex[:8]}",
            task_queue="ains-orchestration",
            result_type=HealthCheckResult,
        )
        changed = {c.agent_id: c.status for c in result.changes}
        assert changed.get(silent) == "unavailable" and healthy not in changed
        agent = (await stack.http.get(f"/v1/agents/{silent}", headers=auth(stack.admin_key))).json()
        assert agent["status"] == "unavailable" and "health check failed" in agent["health_error"]
        listed = (
            await stack.http.get(
                "/v1/agents", headers=auth(stack.admin_key), params={"tag": tag, "status": "available"}
            )
        ).json()
        assert [a["id"] for a in listed["items"]] == [healthy]

        revived = await stack.http.post(f"/v1/agents/{silent}/heartbeat", headers=auth(stack.admin_key))
        assert revived.status_code == 200
        assert revived.json()["status"] == "available" and revived.json()["last_heartbeat_at"]
    finally:
        dead.close()


async def _queue_behind_a_busy_agent(stack: Stack, key: str, tag: str, busy_for: float) -> dict[str, object]:
    blocker = await stack.submit(key, type="echo", input={"delay_seconds": busy_for}, required_capabilities=[tag])
    await stack.wait_for(key, str(blocker["id"]), {"running"})
    return blocker


async def test_higher_priority_waiting_task_gets_the_freed_slot_first(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run", max_concurrency=1)
    key, _ = await stack.new_key()
    blocker = await _queue_behind_a_busy_agent(stack, key, tag, busy_for=2)
    low_a = await stack.submit(key, required_capabilities=[tag], priority=2, queue_timeout_seconds=60)
    low_b = await stack.submit(key, required_capabilities=[tag], priority=2, queue_timeout_seconds=60)
    high = await stack.submit(key, required_capabilities=[tag], priority=10, queue_timeout_seconds=60)
    for task in (low_a, low_b, high):
        await stack.wait_for(key, task["id"], {"routing"}, timeout=5)
    done = {t["id"]: await stack.wait_for(key, t["id"], timeout=30) for t in (blocker, low_a, low_b, high)}
    assert all(d["status"] == "succeeded" for d in done.values())
    order = sorted((low_a["id"], low_b["id"], high["id"]), key=lambda i: done[i]["started_at"])
    assert order == [high["id"], low_a["id"], low_b["id"]], "priority first, then FIFO"
    routing = (await stack.http.get(f"/v1/tasks/{low_b['id']}/routing", headers=auth(key))).json()
    assert routing["receipts"][0]["outcome"] == "assigned"


async def test_age_boost_lets_an_old_low_priority_task_overtake_new_higher_ones(stack: Stack) -> None:
    # The stack ages priorities by one level per second (AINS_PRIORITY_AGING_SECONDS=1).
    _, tag = await stack.register_agent("/run", max_concurrency=1)
    key, _ = await stack.new_key()
    blocker = await _queue_behind_a_busy_agent(stack, key, tag, busy_for=4)
    old_low = await stack.submit(key, required_capabilities=[tag], priority=1, queue_timeout_seconds=60)
    await stack.wait_for(key, old_low["id"], {"routing"}, timeout=5)
    await asyncio.sleep(3)
    new_higher = await stack.submit(key, required_capabilities=[tag], priority=3, queue_timeout_seconds=60)
    done = {t["id"]: await stack.wait_for(key, t["id"], timeout=30) for t in (blocker, old_low, new_higher)}
    assert done[old_low["id"]]["started_at"] < done[new_higher["id"]]["started_at"]
