"""A call activity that recorded its attempt and then lost its worker is retried by Temporal: the retry returns
what was recorded and never calls the agent again, and trust moves once (real DB, real agent, the real activity
run by temporalio's ActivityEnvironment, as the retry would run it on another worker)."""

from __future__ import annotations

import aiohttp
from sqlalchemy import func, select
from temporalio.testing import ActivityEnvironment

from ains.activities.agent_calls import AgentCallActivities
from ains.core.tasks.attempt_finish import AttemptFinisher
from ains.models.tables import TrustRecord
from ains.models.workflow_io import AgentCallRequest, CallOutcome
from tests.support.counting_agent import CountingAgent, is_routing_marker, register_counting_agent
from tests.support.stack import SIGNING_SECRET, Stack


async def _trust_records(stack: Stack, task_id: str) -> int:
    async with stack.db.session() as session:
        return int((await session.execute(select(func.count()).where(TrustRecord.task_id == task_id))).scalar_one())


async def test_a_retried_call_after_its_attempt_was_recorded_does_not_call_the_agent_again(stack: Stack) -> None:
    async with CountingAgent(delay=0.0) as agent:
        agent_id, tag = await register_counting_agent(stack, agent.url, max_concurrency=2)
        key, _ = await stack.new_key()
        task = await stack.submit(key, required_capabilities=[tag], max_attempts=1, input={"n": 1})
        done = await stack.wait_for(key, task["id"])
        assert done["status"] == "succeeded" and agent.started == [task["id"]]
        assert await _trust_records(stack, task["id"]) == 1

        async with aiohttp.ClientSession() as http:
            calls = AgentCallActivities(
                stack.db, http, SIGNING_SECRET, 0.5, 5.0, AttemptFinisher(stack.db, None, stack.settings)
            )
            retry = AgentCallRequest(
                task_id=task["id"],
                attempt=1,
                agent_id=agent_id,
                endpoint_url=agent.url,
                timeout_seconds=30,
                record=True,
                last_attempt=True,
            )
            result = await ActivityEnvironment().run(calls.call_agent, retry)

        assert result.outcome is CallOutcome.SUCCESS, result
        assert result.finished is None, "the workflow's finish step completes what the lost worker left"
        assert agent.started == [task["id"]], "the agent was not called a second time"
        assert await _trust_records(stack, task["id"]) == 1
        view = await stack.wait_for(key, task["id"])
        assert view["result"] == done["result"] and view["attempts"] == 1


async def test_a_call_recorded_in_its_activity_leaves_no_bookkeeping_step_in_the_history(stack: Stack) -> None:
    async with CountingAgent(delay=0.0) as agent:
        _, tag = await register_counting_agent(stack, agent.url, max_concurrency=2)
        key, _ = await stack.new_key()
        task = await stack.submit(key, required_capabilities=[tag])
        view = await stack.wait_for(key, task["id"])
        assert view["status"] == "succeeded"
        client = await stack.temporal()
        handle = client.get_workflow_handle(view["workflow_id"])
        await handle.result()
        history = await handle.fetch_history()
        markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
        upserts = [e for e in history.events if e.HasField("upsert_workflow_search_attributes_event_attributes")]
        # S1 (a bare one-activity workflow) has 11 events; AINS adds the routing marker and one upsert.
        assert len(history.events) == 13, [e.event_type for e in history.events]
        assert len(markers) == 1 and is_routing_marker(markers[0])
        assert len(upserts) == 1
        described = await handle.describe()
        attrs = {pair.key.name: pair.value for pair in described.typed_search_attributes}
        assert attrs["AinsStatus"] == "succeeded" and attrs["AinsAgentId"] == view["assigned_agent_id"]
