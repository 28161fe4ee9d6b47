"""Backoff between attempts and queue timeouts, on Temporal's time-skipping test server.

Hours of timers pass in seconds of wall time; the history shows the exact timer durations.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowFailureError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ains.activities.routed_calls import RoutedCallActivities
from ains.core.agents.registry import register_agent
from ains.core.platform.db import Database
from ains.core.platform.outbound_http import new_session
from ains.core.platform.settings import Settings
from ains.models.agents import AgentCreate, Capability
from ains.models.contract import AGENTS_QUEUE, ORCHESTRATION_QUEUE
from ains.models.search_attributes import ALL_KEYS
from ains.models.tables import Agent, Task, TaskAttempt, TrustRecord
from ains.models.workflow_io import (
    ROUTED_CALLS,
    TASK_FAILURE_TYPES,
    AgentCallRequest,
    AgentCallResult,
    ExecutionPolicy,
    RetrySpec,
    RouteAndCall,
    RoutedCall,
    TaskWorkflowInput,
    TaskWorkflowResult,
    task_result_of_failure,
)
from ains.workers.temporal_dev import find_binary
from ains.workers.worker import build_workers, resolve_queues
from ains.workflows.task_workflow import TaskWorkflow
from tests.support.databases import fresh_database
from tests.support.factories import task_row
from tests.support.servers import RunningServer
from tests.support.stack import SIGNING_SECRET


@pytest.fixture(scope="module")
async def time_skipping() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"), data_converter=pydantic_data_converter
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={key.name: int(key.indexed_value_type) for key in ALL_KEYS},  # type: ignore[misc]
        )
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Database]:
    async with fresh_database("sqlite", tmp_path) as url:
        db = Database(url)
        try:
            yield db
        finally:
            await db.dispose()


async def task_result(run: Awaitable[TaskWorkflowResult]) -> TaskWorkflowResult:
    """The task's result, also when its run failed: a failed or timed-out task fails its workflow (so the
    Temporal UI agrees), carrying the result as the failure's details."""
    try:
        return await run
    except WorkflowFailureError as err:
        cause = err.cause
        assert isinstance(cause, ApplicationError) and cause.type in TASK_FAILURE_TYPES.values(), err
        assert cause.non_retryable
        carried = task_result_of_failure(cause.details)
        assert carried is not None
        assert carried.status in cause.message, (cause.message, carried)
        return carried


async def _agent(db: Database, url: str, max_concurrency: int = 1) -> tuple[str, str]:
    agent_id, tag = f"ts-{uuid.uuid4().hex[:8]}", f"ts-{uuid.uuid4().hex[:8]}"
    async with db.transaction() as session:
        await register_agent(
            session,
            AgentCreate(
                id=agent_id,
                display_name=agent_id,
                endpoint_url=url,  # type: ignore[arg-type]
                capabilities=[Capability(tag=tag)],
                max_concurrency=max_concurrency,
            ),
        )
    return agent_id, tag


def _input(tag: str, **fields: Any) -> TaskWorkflowInput:
    """A task's run input for an agent offering ``tag``: an echo task with a 10 s timeout, plus ``fields``."""
    defaults: dict[str, Any] = {
        "task_id": f"tsk_{uuid.uuid4().hex}",
        "client_id": "c",
        "task_type": "echo",
        "required_capabilities": [tag],
        "priority": 5,
        "timeout_seconds": 10,
    }
    return TaskWorkflowInput(**{**defaults, **fields})


async def _run(client: Client, db: Database, params: TaskWorkflowInput) -> tuple[TaskWorkflowResult, list[float]]:
    async with db.transaction() as session:
        session.add(
            task_row(
                params.task_id,
                params.required_capabilities,
                timeout_seconds=params.timeout_seconds,
                max_attempts=params.max_attempts,
            )
        )
    settings = Settings(database_url=db.url, agent_signing_secret=SIGNING_SECRET, worker_metrics_port=0)
    async with new_session(settings) as http:
        workers = build_workers(client, db, http, settings, resolve_queues(["all"]))
        for worker in workers:
            await worker.__aenter__()
        try:
            handle = await client.start_workflow(
                TaskWorkflow.run, params, id=f"task-{params.task_id}", task_queue=ORCHESTRATION_QUEUE
            )
            result = await task_result(handle.result())
            timers = [
                event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta().total_seconds()
                async for event in handle.fetch_history_events()
                if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
            ]
        finally:
            for worker in reversed(workers):
                await worker.__aexit__(None, None, None)
    return result, timers


async def test_backoff_between_attempts_follows_the_task_retry_policy(
    time_skipping: WorkflowEnvironment, registry: Database, demo_agent: RunningServer
) -> None:
    agent_id, tag = await _agent(registry, f"{demo_agent.url}/fail")
    params = _input(
        tag,
        max_attempts=3,
        retry=RetrySpec(initial_interval_seconds=600, backoff_coefficient=3, maximum_interval_seconds=7200),
    )
    started = time.monotonic()
    result, timers = await _run(time_skipping.client, registry, params)
    assert time.monotonic() - started < 20, "40 minutes of backoff should be skipped"
    assert result.status == "failed" and result.attempts == 3
    assert timers == [600.0, 1800.0], "initial * coefficient^(attempt-1) between the three attempts"
    async with registry.session() as session:
        attempts = [await session.get(TaskAttempt, (params.task_id, n)) for n in (1, 2, 3)]
    assert [a.agent_id for a in attempts if a] == [agent_id] * 3, "the only capable agent is retried"


async def test_task_waits_for_a_busy_agent_until_its_queue_timeout(
    time_skipping: WorkflowEnvironment, registry: Database, demo_agent: RunningServer
) -> None:
    agent_id, tag = await _agent(registry, f"{demo_agent.url}/run", max_concurrency=1)
    async with registry.transaction() as session:  # another task holds the agent's only slot
        session.add(task_row("tsk_holder", [tag], status="running", max_attempts=1))
        await session.flush()
        session.add(TaskAttempt(task_id="tsk_holder", attempt=1, agent_id=agent_id))
    params = _input(
        tag,
        max_attempts=1,
        queue_timeout_seconds=3600,
        policy=ExecutionPolicy(priority_aging_seconds=0),
    )
    started = time.monotonic()
    result, timers = await _run(time_skipping.client, registry, params)
    assert time.monotonic() - started < 30
    assert result.status == "failed" and "within 3600s" in (result.error or "")
    assert sum(timers) == pytest.approx(3600, abs=1), "the waits add up to the queue timeout"
    # Waiting is passive (a hand-over signal wakes it): only the jittered fallback re-check, 225-375 s.
    assert len(timers) <= 3600 // 225 + 1 and all(t <= 375 for t in timers), timers
    async with registry.session() as session:
        task = await session.get(Task, params.task_id)
    assert task is not None and task.status == "failed" and task.error_code == "no_agent_available"


async def test_a_call_that_fails_on_our_side_every_retry_is_a_platform_error_without_trust(
    time_skipping: WorkflowEnvironment, registry: Database
) -> None:
    """Our own worker failing (here a stand-in call activity that raises on every retry) fails the attempt as
    ``platform_error``: no trust record, and the agent is not avoided when the task is routed again."""
    agent_id, tag = await _agent(registry, "http://127.0.0.1:9/never-called")

    @activity.defn(name="call_agent")
    async def broken_call(request: AgentCallRequest) -> AgentCallResult:
        raise RuntimeError("worker bug: the call activity crashed before calling the agent")

    params = _input(
        tag,
        max_attempts=2,
    )
    async with registry.transaction() as session:
        session.add(task_row(params.task_id, [tag], max_attempts=2))
    settings = Settings(database_url=registry.url, agent_signing_secret=SIGNING_SECRET, worker_metrics_port=0)
    client = time_skipping.client
    async with new_session(settings) as http:
        workers = [
            *build_workers(client, registry, http, settings, resolve_queues(["orchestration"])),
            Worker(client, task_queue=AGENTS_QUEUE, activities=[broken_call]),
        ]
        for worker in workers:
            await worker.__aenter__()
        try:
            result = await task_result(
                client.execute_workflow(
                    TaskWorkflow.run, params, id=f"task-{params.task_id}", task_queue=ORCHESTRATION_QUEUE
                )
            )
        finally:
            for worker in reversed(workers):
                await worker.__aexit__(None, None, None)
    assert result.status == "failed" and result.attempts == 2
    async with registry.session() as session:
        task = await session.get(Task, params.task_id)
        attempts = [await session.get(TaskAttempt, (params.task_id, n)) for n in (1, 2)]
        records = (await session.execute(select(TrustRecord).where(TrustRecord.task_id == params.task_id))).all()
        agent = await session.get(Agent, agent_id)
    assert task is not None and task.error_code == "platform_error", task.error if task else None
    assert "on AINS's side" in (task.error or "")
    assert [a.agent_id for a in attempts if a] == [agent_id, agent_id], "the agent was not avoided"
    assert records == [] and agent is not None and agent.trust_score == 0.5 and agent.total_tasks == 0


async def test_a_routing_step_that_fails_on_our_side_routes_again_and_calls_through_the_queue(
    time_skipping: WorkflowEnvironment,
    registry: Database,
    demo_agent: RunningServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """route_and_call (routing with the inline call, runs from ROUTED_CALLS on) has a single try: when it fails
    on our side the attempt routes again with the registry's retries and calls the agent through the queue,
    once, and the agent's trust moves only for that call."""
    agent_id, tag = await _agent(registry, f"{demo_agent.url}/run")
    async with registry.transaction() as session:  # measured fast: its calls would be made inline
        await session.execute(update(Agent).where(Agent.id == agent_id).values(avg_response_ms=5.0))

    @activity.defn(name="route_and_call")
    async def broken_route_and_call(self: RoutedCallActivities, request: RouteAndCall) -> RoutedCall:
        raise RuntimeError("worker bug: the routing step crashed")

    monkeypatch.setattr(RoutedCallActivities, "route_and_call", broken_route_and_call)
    params = _input(
        tag,
        max_attempts=1,
        history_version=ROUTED_CALLS,
        policy=ExecutionPolicy(inline_call_max_ms=500),
    )
    result, _ = await _run(time_skipping.client, registry, params)
    assert result.status == "succeeded" and result.attempts == 1
    handle = time_skipping.client.get_workflow_handle(f"task-{params.task_id}")
    kinds = [event.event_type async for event in handle.fetch_history_events()]
    assert kinds.count(EventType.EVENT_TYPE_MARKER_RECORDED) == 2, "the failed step, then route_task"
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED in kinds, "the call went through the queue, not inline"
    async with registry.session() as session:
        records = (await session.execute(select(TrustRecord).where(TrustRecord.task_id == params.task_id))).all()
        agent = await session.get(Agent, agent_id)
    assert len(records) == 1 and agent is not None and agent.total_tasks == 1
    assert agent.trust_score == pytest.approx(0.52)
