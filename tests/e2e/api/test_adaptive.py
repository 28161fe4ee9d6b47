"""Adaptive routing end to end: feedback, what an agent learned, receipts, learning from a grader."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from ains.core.tasks.attempts import record_attempt
from ains.models import adaptive
from ains.models.tables import AdaptiveObservation, AdaptiveStat
from ains.models.workflow_io import AgentCallResult, AttemptRecord, CallOutcome
from tests.support.stack import Stack, auth

DISCOUNT = 0.98  # AINS_ADAPTIVE_DISCOUNT's default


async def _learned(stack: Stack, agent_id: str, tag: str) -> dict[str, Any]:
    response = await stack.http.get(f"/v1/agents/{agent_id}", headers=auth(stack.admin_key))
    assert response.status_code == 200, response.text
    [figures] = [t for t in response.json()["learned"] if t["tag"] == tag]
    return dict(figures)


def _quality_after_one(score: float, trust: float) -> float:
    """Posterior mean quality after one observation of ``score``, from a prior at ``trust``."""
    evidence = adaptive.observe(adaptive.Evidence(), adaptive.Observation(score, 10.0, 0.0), DISCOUNT)
    return round(adaptive.posterior(evidence, trust, 10.0, None, False).quality, 4)


async def test_feedback_replaces_the_success_in_what_the_agent_learned_and_leaves_trust_alone(stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    task = await stack.submit(key, required_capabilities=[tag], routing_strategy="adaptive")
    done = await stack.wait_for(key, task["id"])
    assert done["status"] == "succeeded" and done["routing_strategy"] == "adaptive"
    trust_before = (await stack.trust(agent_id))["trust_score"]

    learned = await _learned(stack, agent_id, tag)
    assert learned["observations"] == 1 and learned["feedback"] == 0
    assert learned["quality"]["mean"] == _quality_after_one(1.0, 0.52)  # a success counts as quality 1

    first = await stack.http.post(
        f"/v1/tasks/{task['id']}/feedback", headers=auth(key), json={"score": 0.2, "label": "off-topic"}
    )
    assert first.status_code == 201, first.text
    assert first.json()["applied"] is True and first.json()["revisions"] == 1
    assert first.json()["agent_id"] == agent_id and first.json()["attempt"] == 1
    assert (await _learned(stack, agent_id, tag))["quality"]["mean"] == _quality_after_one(0.2, 0.52)

    second = await stack.http.post(f"/v1/tasks/{task['id']}/feedback", headers=auth(key), json={"score": 0.9})
    assert second.status_code == 200, second.text
    assert second.json()["revisions"] == 2 and second.json()["label"] is None
    learned = await _learned(stack, agent_id, tag)
    assert learned["observations"] == 1 and learned["feedback"] == 1  # replaced, not added
    assert learned["quality"]["mean"] == _quality_after_one(0.9, 0.52)
    assert (await stack.trust(agent_id))["trust_score"] == trust_before  # feedback never moves trust

    shown = await stack.http.get(f"/v1/tasks/{task['id']}/feedback", headers=auth(key))
    assert shown.status_code == 200 and shown.json()["score"] == 0.9


async def test_feedback_refuses_bad_scores_other_clients_unfinished_tasks_and_read_only_keys(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    hanging, hang_tag = await stack.register_agent("/hang")
    key, _ = await stack.new_key()
    task = await stack.submit(key, required_capabilities=[tag])
    await stack.wait_for(key, task["id"])
    url = f"/v1/tasks/{task['id']}/feedback"

    for body in ({"score": 1.5}, {"score": -0.1}, {}, {"score": 0.5, "extra": 1}):
        response = await stack.http.post(url, headers=auth(key), json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["code"] == "validation_error"

    other, _ = await stack.new_key()
    response = await stack.http.post(url, headers=auth(other), json={"score": 0.5})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = await stack.http.post("/v1/tasks/tsk_nope/feedback", headers=auth(key), json={"score": 0.5})
    assert response.status_code == 404

    from ains.models.keys import Scope

    reader, _ = await stack.new_key(scopes=[Scope.TASKS_READ])
    assert (await stack.http.post(url, headers=auth(reader), json={"score": 0.5})).status_code == 403

    running = await stack.submit(key, required_capabilities=[hang_tag], timeout_seconds=30)
    await stack.wait_for(key, running["id"], statuses={"running"})
    response = await stack.http.post(f"/v1/tasks/{running['id']}/feedback", headers=auth(key), json={"score": 0.5})
    assert response.status_code == 409 and "succeeded" in response.json()["error"]["message"]
    await stack.http.post(f"/v1/tasks/{running['id']}/cancel", headers=auth(key))
    assert hanging


async def test_adaptive_receipt_shows_posteriors_draws_and_objective_per_candidate(stack: Stack) -> None:
    first, tag = await stack.register_agent("/run")
    second, _ = await stack.register_agent("/run", tag=tag, price_per_call_usd=0.002)
    key, _ = await stack.new_key()
    objectives = {"quality": 0.5, "latency": 0.0, "cost": 0.5}
    task = await stack.submit(key, required_capabilities=[tag], routing_strategy="adaptive", objectives=objectives)
    done = await stack.wait_for(key, task["id"])
    assert done["objectives"] == objectives

    [receipt] = (await stack.http.get(f"/v1/tasks/{task['id']}/routing", headers=auth(key))).json()["receipts"]
    assert receipt["strategy"] == "adaptive" and receipt["winner_agent_id"] == done["assigned_agent_id"]
    by_agent = {c["agent_id"]: c for c in receipt["candidates"]}
    assert set(by_agent) == {first, second}
    for candidate in by_agent.values():
        figures = candidate["adaptive"]
        assert figures["tag"] == tag and figures["weights"] == {"quality": 0.5, "latency": 0.0, "cost": 0.5}
        assert 0 <= figures["quality"]["mean"] <= 1 and figures["latency_ms"]["mean"] > 0
        # Sampled, or (its bound could not beat the winner's draw) ranked by its posterior-mean objective.
        sampled = figures["objective"]["sampled"]
        assert candidate["score"] == (
            sampled if sampled is not None else pytest.approx(figures["objective"]["mean"], abs=1e-4)
        )
    assert by_agent[second]["adaptive"]["cost_usd"]["mean"] == 0.002
    assert by_agent[first]["adaptive"]["cost_usd"]["mean"] == 0.0
    winner = by_agent[receipt["winner_agent_id"]]
    assert winner["score"] == max(c["score"] for c in by_agent.values())


async def test_adaptive_routing_learns_from_a_grader_to_prefer_the_agent_with_better_results(stack: Stack) -> None:
    good, tag = await stack.register_agent("/run")
    poor, _ = await stack.register_agent("/run", tag=tag)
    key, _ = await stack.new_key()
    grade = {good: 0.95, poor: 0.05}
    chosen: list[str] = []
    for _ in range(24):
        task = await stack.submit(key, required_capabilities=[tag], routing_strategy="adaptive")
        done = await stack.wait_for(key, task["id"])
        agent_id = done["assigned_agent_id"]
        chosen.append(agent_id)
        response = await stack.http.post(
            f"/v1/tasks/{task['id']}/feedback", headers=auth(key), json={"score": grade[agent_id]}
        )
        assert response.status_code == 201, response.text
    assert chosen[-10:].count(good) >= 8, chosen
    learned_good, learned_poor = await _learned(stack, good, tag), await _learned(stack, poor, tag)
    assert learned_good["quality"]["mean"] > 0.7
    if poor in chosen:
        assert learned_poor["quality"]["mean"] < 0.4
    else:  # the first draws went to the good agent and it never lost one (a few % of runs): nothing learned
        assert learned_poor["evidence"] == 0 and learned_poor["quality"]["mean"] == 0.5


async def test_recording_an_attempt_twice_adds_one_observation(stack: Stack) -> None:
    agent_id, tag = await stack.register_agent("/run")
    key, _ = await stack.new_key()
    task = await stack.submit(key, required_capabilities=[tag], routing_strategy="adaptive")
    await stack.wait_for(key, task["id"])
    replay = AttemptRecord(
        task_id=task["id"],
        attempt=1,
        agent_id=agent_id,
        result=AgentCallResult(outcome=CallOutcome.FAILURE, error="late duplicate", duration_ms=1.0),
        task_status="failed",
    )
    async with stack.db.transaction() as session:
        assert await record_attempt(session, replay) is False
    async with stack.db.session() as session:
        observations = (
            await session.execute(
                select(func.count()).select_from(AdaptiveObservation).where(AdaptiveObservation.task_id == task["id"])
            )
        ).scalar_one()
        stat = await session.get(AdaptiveStat, (agent_id, tag))
    assert observations == 1
    assert stat is not None and stat.observations == 1 and stat.quality == pytest.approx(1.0)
