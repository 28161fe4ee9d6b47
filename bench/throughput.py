"""S1 (bare Temporal) and S2 (the full AINS path) under the same closed-loop load shapes."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC

from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from ains.core.platform.db import Database
from ains.models.tables import Task, TaskAttempt
from bench.loadgen import LoadClient
from bench.s1_worker import TASK_QUEUE
from bench.stats import LoadResult, closed_loop, median

TASK_TIMEOUT_SECONDS = 60.0
RUN_NOT_FOUND_FIRST_RETRY_SECONDS = 0.005
RUN_NOT_FOUND_MAX_RETRY_SECONDS = 0.1


@dataclass
class Sample:
    """What the breakdown needs about one finished run: its workflow id and when the client started it."""

    workflow_id: str
    t0_wall: float
    task_id: str | None = None


@dataclass
class LevelResult:
    load: LoadResult
    samples: list[Sample] = field(default_factory=list)


async def run_s1(client: Client, concurrency: int, total: int) -> LevelResult:
    samples: list[Sample] = []

    async def one(_: int) -> float:
        workflow_id = f"s1-{uuid.uuid4().hex}"
        t0_wall, t0 = time.time(), time.perf_counter()
        await client.execute_workflow("BareWorkflow", "x", id=workflow_id, task_queue=TASK_QUEUE)
        samples.append(Sample(workflow_id, t0_wall))
        return (time.perf_counter() - t0) * 1000

    return LevelResult(await closed_loop(concurrency, total, one), samples)


async def run_s2(http: LoadClient, client: Client, db: Database, concurrency: int, total: int) -> LevelResult:
    """Submit over REST and wait for the task's workflow to finish (the same long poll S1 uses).

    The latency ends at the task's ``completed_at`` in the registry DB: the moment the read model that
    ``GET /v1/tasks/{id}`` serves is final (it is written just before the workflow completes).
    """
    samples: list[Sample] = []

    async def one(i: int) -> float:
        t0_wall = time.time()
        response = await http.post("/v1/tasks", {"type": "echo", "input": {"text": f"n{i}"}})
        if response.status != 202:
            raise RuntimeError(f"POST /v1/tasks answered {response.status}: {response.text()}")
        accepted = response.body
        await asyncio.wait_for(_run_result(client, accepted["workflow_id"]), TASK_TIMEOUT_SECONDS)
        samples.append(Sample(accepted["workflow_id"], t0_wall, accepted["id"]))
        return 0.0  # replaced below by the read-model time

    load = await closed_loop(concurrency, total, one)
    done = await _completed(db, [s.task_id for s in samples if s.task_id])
    latencies = []
    for sample in samples:
        status, completed = done.get(sample.task_id or "", ("missing", float("nan")))
        if status != "succeeded":
            load.errors += 1
            load.error_samples.append(f"task {sample.task_id} ended {status}")
            continue
        latencies.append((completed - sample.t0_wall) * 1000)
    load.latencies_ms = latencies
    return LevelResult(load, samples)


async def _run_result(client: Client, workflow_id: str) -> None:
    """Wait for the run's result. POST /v1/tasks answers before the run is started (api/task_starter.py), so a
    run not found yet is asked for again, after 5 ms and then backing off (a retry every 5 ms from 64-256 users
    would load the server the bench measures)."""
    handle = client.get_workflow_handle(workflow_id)
    delay = RUN_NOT_FOUND_FIRST_RETRY_SECONDS
    while True:
        try:
            await handle.result()
            return
        except RPCError as exc:
            if exc.status is not RPCStatusCode.NOT_FOUND:
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, RUN_NOT_FOUND_MAX_RETRY_SECONDS)


async def _completed(db: Database, ids: list[str]) -> dict[str, tuple[str, float]]:
    found: dict[str, tuple[str, float]] = {}
    async with db.session() as session:
        for start in range(0, len(ids), 500):
            rows = (
                await session.execute(
                    select(Task.id, Task.status, Task.completed_at).where(Task.id.in_(ids[start : start + 500]))
                )
            ).all()
            for task_id, status, completed_at in rows:
                if completed_at is None:
                    found[task_id] = (status, float("nan"))
                    continue
                stamp = completed_at if completed_at.tzinfo else completed_at.replace(tzinfo=UTC)
                found[task_id] = (status, stamp.timestamp())
    return found


# --- per-stage breakdown from Temporal workflow histories -------------------------------------------------

STAGES = [
    ("submit", "client call → workflow started (S2: auth, DB insert, start RPC)"),
    ("wft_wait", "first workflow task waits in its queue"),
    ("first_wft", "first workflow task (S2: routing, a local activity; an inline call and its recording too)"),
    ("act_wait", "activity task waits in its queue (S2: calls that took the queue)"),
    ("activity", "activity runs (S2: reading the task row, the agent call, recording the attempt)"),
    ("finish", "activity (S2 inline: first workflow task) done → workflow completed"),
]


async def breakdown(client: Client, samples: list[Sample], limit: int = 40) -> dict[str, float]:
    """Median milliseconds per stage over up to ``limit`` runs."""
    per_stage: dict[str, list[float]] = {name: [] for name, _ in STAGES}
    for sample in samples[:limit]:
        times: dict[int, list[float]] = {}
        async for event in client.get_workflow_handle(sample.workflow_id).fetch_history_events():
            times.setdefault(event.event_type, []).append(event.event_time.ToMicroseconds() / 1e6)
        try:
            started = times[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED][0]
            wft_scheduled = times[EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED][0]
            wft_started = times[EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED][0]
            completed = times[EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED][0]
        except (KeyError, IndexError):
            continue
        values = {"submit": started - sample.t0_wall, "wft_wait": wft_started - wft_scheduled}
        if EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED in times:
            act_scheduled = times[EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED][0]
            act_started = times[EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED][0]
            act_completed = times[EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED][0]
            values |= {
                "first_wft": act_scheduled - wft_started,
                "act_wait": act_started - act_scheduled,
                "activity": act_completed - act_started,
                "finish": completed - act_completed,
            }
        else:  # an inline call: routing, the call and its recording all happen in the first workflow task
            wft_completed = times[EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED][0]
            values |= {"first_wft": wft_completed - wft_started, "finish": completed - wft_completed}
        for name, seconds in values.items():
            per_stage[name].append(seconds * 1000)
    return {name: median(values) for name, values in per_stage.items() if values}


async def db_breakdown(db: Database, samples: list[Sample]) -> dict[str, float]:
    """From the read model: time to routing (created → attempt started) and the pure HTTP call to the agent."""
    ids = [s.task_id for s in samples if s.task_id]
    if not ids:
        return {}
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Task.created_at, TaskAttempt.started_at, TaskAttempt.duration_ms, Task.completed_at)
                .join(TaskAttempt, TaskAttempt.task_id == Task.id)
                .where(Task.id.in_(ids), TaskAttempt.attempt == 1)
            )
        ).all()
    to_route = [(started - created).total_seconds() * 1000 for created, started, _, _ in rows]
    http_ms = [float(d) for _, _, d, _ in rows if d is not None]
    return {"created_to_routed": median(to_route), "agent_http": median(http_ms)}
