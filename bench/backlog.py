"""Dispatch under a backlog: does a queue of 1,000 tasks drain at the agent's capacity, fairly and cheaply?

Real processes (Temporal dev server, `ains api`, `ains worker`, the demo agent, the S1 bare-Temporal worker)
on a fresh registry per backend (SQLite, and Postgres when AINS_BENCH_POSTGRES_URL or the CI default is
reachable). One agent with 4 slots does the backlog (`echo`, 50 ms each), so the slots could take 80 tasks/s;
this machine's ceiling is the S1 bare-Temporal closed-loop throughput at c=64, measured first in the same run.

Scenarios, per backend:

1. **drain**: 1,000 tasks submitted as one batch; drain rate = tasks / (last finish - first start); three
   drains, the median reported (CPU per drained task by process likewise).
2. **idle wait**: the 4 slots held by long tasks, 1,000 more waiting: CPU of the AINS processes per second.
3. **priority + API**: first, with nothing queued, 8 clients time POST /v1/tasks (to another, idle agent)
   for 10 s: the baseline, as each probing POST is a whole task of its own. Then another 1,000-task drain;
   2 s in, one priority-10 and one priority-1 task are submitted, and the same 8 clients probe for 10 s.
4. **fairness**: client A submits 1,000, then client B 20 at the same priority: B's waits, and B's share of
   the slots while both had work queued.

    .venv/bin/python -m bench.backlog [--tasks 1000] [--backends sqlite,postgres]

Writes bench/results/BACKLOG.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from ains.core.access.keys import create_key
from ains.core.agents.registry import update_agent, upsert_agent
from ains.core.platform.db import Database
from ains.models.agents import AgentCreate, AgentUpdate, Capability
from ains.models.keys import ApiKeyCreate, Scope
from ains.models.tables import Task, TaskAttempt
from bench import profile
from bench.harness import BENCH_AGENT_ID, Proc, Stack, say_to
from bench.loadgen import LoadClient
from bench.report import Report
from bench.stats import pct as percentile
from bench.throughput import run_s1
from tests.support.databases import postgres_reachable, scratch_postgres

RESULTS = Path(__file__).parent / "results" / "BACKLOG.md"
# The CI and development Postgres (AINS_BENCH_DATABASE_URL overrides); a scratch database is made in it.
LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
SLOTS = 4
TASK_SECONDS = 0.05
PROBE_AGENT_ID = "bench-probe"
PROBE_TAG = "probe"
BATCH_LIMIT = 1000
# The drain is the headline figure and moves between runs on a shared VM: its median of this many is reported.
DRAIN_RUNS = 3
say = say_to("backlog")


@dataclass
class BackendResult:
    backend: str
    drain_rate: float = 0.0  # median of DRAIN_RUNS drains
    drain_rates: list[float] = field(default_factory=list)
    drain_worker_cpu_ms: float = 0.0
    drain_cpu_ms: dict[str, float] = field(default_factory=dict)  # per drained task, by process (medians)
    idle_cpu_percent: float = 0.0
    idle_parts: dict[str, float] = field(default_factory=dict)
    high_wait: float = float("nan")
    low_wait: float = float("nan")
    probe_p50: float = float("nan")
    probe_p95: float = float("nan")
    probe_count: int = 0
    probe_drain_rate: float = 0.0
    # The same probe with no backlog at all: its baseline, since each probing POST is a whole task of its own.
    idle_probe_p50: float = float("nan")
    idle_probe_p95: float = float("nan")
    idle_probe_count: int = 0
    b_wait_p50: float = float("nan")
    b_wait_max: float = float("nan")
    b_share: float = float("nan")
    notes: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)
    slow_workflow_tasks: int = 0
    handover_stages: dict[str, float] = field(default_factory=dict)  # medians (ms), see _handover_stages


def _task(delay: float, **extra: Any) -> dict[str, Any]:
    return {
        "type": "echo",
        "input": {"delay_seconds": delay},
        "queue_timeout_seconds": 3600,
        "max_attempts": 1,
        **extra,
    }


async def _batch(http: httpx.AsyncClient, key: str, count: int, delay: float, **extra: Any) -> list[str]:
    ids: list[str] = []
    for begin in range(0, count, BATCH_LIMIT):
        size = min(BATCH_LIMIT, count - begin)
        body = {"tasks": [_task(delay, **extra) for _ in range(size)]}
        response = await http.post("/v1/tasks/batch", headers={"Authorization": f"Bearer {key}"}, json=body)
        response.raise_for_status()
        ids += [t["id"] for t in response.json()["tasks"]]
    return ids


async def _submit(http: httpx.AsyncClient, key: str, **body: Any) -> str:
    response = await http.post("/v1/tasks", headers={"Authorization": f"Bearer {key}"}, json=body)
    response.raise_for_status()
    return str(response.json()["id"])


async def _rows(db: Database, ids: list[str]) -> list[Task]:
    found: list[Task] = []
    async with db.session() as session:
        for begin in range(0, len(ids), 500):
            chunk = ids[begin : begin + 500]
            found += list((await session.execute(select(Task).where(Task.id.in_(chunk)))).scalars())
    return found


async def _wait_final(db: Database, ids: list[str], timeout: float) -> list[Task]:
    deadline = time.monotonic() + timeout
    while True:
        rows = await _rows(db, ids)
        done = sum(1 for r in rows if r.completed_at is not None)
        if done == len(ids) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(1.0)


async def _wait_status(db: Database, ids: list[str], status: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await _rows(db, ids)
        if sum(1 for r in rows if r.status == status) == len(ids):
            return
        await asyncio.sleep(1.0)
    raise RuntimeError(f"not all {len(ids)} tasks reached {status} in {timeout}s")


def _epoch(value: datetime | None) -> float:
    assert value is not None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _drain_rate(rows: list[Task]) -> float:
    starts = [_epoch(r.started_at) for r in rows if r.started_at]
    ends = [_epoch(r.completed_at) for r in rows if r.completed_at]
    span = max(ends) - min(starts)
    return len(ends) / span if span > 0 else float("nan")


async def _cancel(http: httpx.AsyncClient, key: str, ids: list[str]) -> None:
    for begin in range(0, len(ids), 50):
        await asyncio.gather(
            *(
                http.post(f"/v1/tasks/{t}/cancel", headers={"Authorization": f"Bearer {key}"})
                for t in ids[begin : begin + 50]
            )
        )


async def _probe(api_url: str, key: str, clients: int, seconds: float) -> tuple[list[float], list[str]]:
    """POST /v1/tasks from ``clients`` closed-loop clients for ``seconds``: the latencies (ms) and the tasks."""
    timings: list[float] = []
    ids: list[str] = []
    deadline = time.monotonic() + seconds
    body = {"type": "echo", "required_capabilities": [PROBE_TAG], "input": {}, "max_attempts": 1}

    async def client(http: LoadClient) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            response = await http.post("/v1/tasks", body)
            if response.status != 202:
                raise RuntimeError(f"POST /v1/tasks answered {response.status}: {response.text()}")
            timings.append((time.perf_counter() - started) * 1000)
            ids.append(str(response.body["id"]))

    async with LoadClient(api_url, key) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return timings, ids


async def _prepare(stack: Stack, database_url: str) -> tuple[Database, str]:
    await stack.bootstrap(database_url)
    db = Database(database_url)
    async with db.transaction() as session:
        await update_agent(session, BENCH_AGENT_ID, AgentUpdate(max_concurrency=SLOTS))
        await upsert_agent(
            session,
            AgentCreate(
                id=PROBE_AGENT_ID,
                display_name="probe agent",
                endpoint_url=f"{stack.demo_url}/run",
                capabilities=[Capability(tag=PROBE_TAG, version="1.0")],
                max_concurrency=1000,
            ),
        )
        other = await create_key(
            session, ApiKeyCreate(client_id="client-b", name="b", scopes=[Scope.ADMIN], rate_limit_per_minute=10**6)
        )
    return db, other.key


HANDOVER_SAMPLE = 60
STAGES = (
    "slot reserved → run started (hand-over commit, eager start RPC)",
    "run started → agent call started (inline: the first workflow task; else its eager activity)",
    "call started → attempt recorded (task row read, HTTP call, record + hand-over transaction)",
    "of which the agent's HTTP call itself (duration_ms)",
)


async def _handover_stages(db: Database, client: Client, ids: list[str]) -> dict[str, float]:
    """Where one hand-over's time goes: medians over tasks from the middle of a drain (each started by the
    hand-over of a slot another task freed), from the registry's attempt rows and the runs' histories."""
    middle = ids[len(ids) // 3 : 2 * len(ids) // 3]
    sample = middle[:: max(1, len(middle) // HANDOVER_SAMPLE)][:HANDOVER_SAMPLE]
    async with db.session() as session:
        attempts = {
            a.task_id: a
            for a in (
                await session.execute(
                    select(TaskAttempt).where(TaskAttempt.task_id.in_(sample), TaskAttempt.attempt == 1)
                )
            ).scalars()
        }
    stages: list[list[float]] = [[] for _ in STAGES]
    for task_id in sample:
        attempt = attempts.get(task_id)
        if attempt is None or attempt.finished_at is None:
            continue
        first: dict[int, float] = {}
        async for event in client.get_workflow_handle(f"task-{task_id}").fetch_history_events():
            first.setdefault(event.event_type, event.event_time.ToDatetime().replace(tzinfo=UTC).timestamp())
        run_started = first.get(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
        # An inline call (a local activity) begins as soon as its run's first workflow task does.
        call_started = first.get(EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED) or first.get(
            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
        )
        if run_started is None or call_started is None:
            continue
        reserved, recorded = _epoch(attempt.started_at), _epoch(attempt.finished_at)
        stages[0].append((run_started - reserved) * 1000)
        stages[1].append((call_started - run_started) * 1000)
        stages[2].append((recorded - call_started) * 1000)
        stages[3].append(attempt.duration_ms or 0.0)
    return {name: statistics.median(values) for name, values in zip(STAGES, stages, strict=True) if values}


async def _profiled(worker: Proc, seconds: float, out: Path) -> list[str]:
    error = await profile.record(worker.pid, seconds, out)
    if error is not None:
        return [error]
    busy, functions, packages = profile.top_functions(out)
    return [f"{busy} busy samples"] + [f"{share:5.1%} {name}" for name, share in packages + functions]


async def run_backend(
    stack: Stack, backend: str, database_url: str, tasks: int, profile_out: Path | None = None
) -> BackendResult:
    result = BackendResult(backend)
    db, key_b = await _prepare(stack, database_url)
    api = await stack.start_api(name=f"api-{backend}")
    worker = stack.start_worker(name=f"worker-{backend}")
    key = stack.admin_key
    await asyncio.sleep(3)
    try:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
            await _submit(http, key, **_task(0.01))  # warm-up
            await asyncio.sleep(1)

            drain_procs = {"temporal": stack.procs["temporal"], "worker": worker, "api": api}
            drain_procs["demo agent"] = stack.procs["demo-agent"]
            cpu_runs: list[dict[str, float]] = []
            for run in range(1, DRAIN_RUNS + 1):
                say(f"{backend}: drain {run}/{DRAIN_RUNS} of {tasks}")
                cpu0 = {name: p.cpu_seconds() for name, p in drain_procs.items()}
                ids = await _batch(http, key, tasks, TASK_SECONDS)
                if profile_out is not None and run == 1:
                    result.profile = await _profiled(worker, 15, profile_out)
                rows = await _wait_final(db, ids, timeout=tasks)
                result.drain_rates.append(_drain_rate(rows))
                cpu_runs.append({n: (p.cpu_seconds() - cpu0[n]) * 1000 / tasks for n, p in drain_procs.items()})
                say(f"{backend}: drained at {result.drain_rates[-1]:.1f} tasks/s")
            result.handover_stages = await _handover_stages(db, await Client.connect(stack.temporal_address), ids)
            result.drain_rate = statistics.median(result.drain_rates)
            result.drain_cpu_ms = {n: statistics.median(c[n] for c in cpu_runs) for n in drain_procs}
            result.drain_worker_cpu_ms = result.drain_cpu_ms["worker"]

            say(f"{backend}: idle wait ({tasks} waiting, slots held)")
            holders = [await _submit(http, key, **_task(120)) for _ in range(SLOTS)]
            await _wait_status(db, holders, "running", 30)
            waiting = await _batch(http, key, tasks, TASK_SECONDS)
            await _wait_status(db, waiting, "routing", 180)
            await asyncio.sleep(5)
            procs = {"api": api, "worker": worker}
            before = {name: p.cpu_seconds() for name, p in procs.items()}
            window = 20.0
            await asyncio.sleep(window)
            result.idle_parts = {name: (p.cpu_seconds() - before[name]) / window * 100 for name, p in procs.items()}
            result.idle_cpu_percent = sum(result.idle_parts.values())
            await _cancel(http, key, waiting + holders)
            await _wait_final(db, waiting + holders, timeout=120)
            say(f"{backend}: idle CPU {result.idle_cpu_percent:.2f} % of a core")

            say(f"{backend}: API latency with no backlog (the probe's baseline)")
            timings, probed = await _probe(stack.api_url, key, clients=8, seconds=10)
            result.idle_probe_p50, result.idle_probe_p95 = percentile(timings, 50), percentile(timings, 95)
            result.idle_probe_count = len(timings)
            await _wait_final(db, probed, timeout=300)  # its tasks must not compete with the next scenario

            say(f"{backend}: priority and API latency during a drain")
            ids = await _batch(http, key, tasks, TASK_SECONDS)
            await asyncio.sleep(2)
            high_at = time.time()
            high = await _submit(http, key, priority=10, **_task(TASK_SECONDS))
            low_at = time.time()
            low = await _submit(http, key, priority=1, **_task(TASK_SECONDS))
            timings, probed = await _probe(stack.api_url, key, clients=8, seconds=10)
            rows = await _wait_final(db, [*ids, high, low], timeout=tasks)
            await _wait_final(db, probed, timeout=300)
            by_id = {r.id: r for r in rows}
            result.high_wait = _epoch(by_id[high].started_at) - high_at
            result.low_wait = _epoch(by_id[low].started_at) - low_at
            result.probe_p50 = percentile(timings, 50)
            result.probe_p95 = percentile(timings, 95)
            result.probe_count = len(timings)
            result.probe_drain_rate = _drain_rate([by_id[i] for i in ids])

            say(f"{backend}: fairness")
            a_ids = await _batch(http, key, tasks, TASK_SECONDS)
            await asyncio.sleep(1)
            b_submitted: dict[str, float] = {}
            for _ in range(20):
                b_submitted[await _submit(http, key_b, **_task(TASK_SECONDS))] = time.time()
            rows = await _wait_final(db, [*a_ids, *b_submitted], timeout=tasks)
            by_id = {r.id: r for r in rows}
            b_waits = [_epoch(by_id[t].started_at) - at for t, at in b_submitted.items()]
            result.b_wait_p50 = statistics.median(b_waits)
            result.b_wait_max = max(b_waits)
            first_b = min(b_submitted.values())
            last_b = max(_epoch(by_id[t].started_at) for t in b_submitted)
            in_window = [r for r in rows if r.started_at and first_b <= _epoch(r.started_at) <= last_b]
            b_in_window = sum(1 for r in in_window if r.id in b_submitted)
            result.b_share = b_in_window / len(in_window) if in_window else float("nan")
    finally:
        api.stop()
        worker.stop()
        await db.dispose()
    result.slow_workflow_tasks = stack.slow_workflow_tasks(worker.name)
    return result


async def run(args: argparse.Namespace) -> Report:
    results: list[BackendResult] = []
    written = Report("Dispatch under a backlog", "python -m bench.backlog")
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp))
        try:
            await stack.start_temporal([])
            await stack.start_demo_agent()
            s1 = Proc(
                "s1-worker",
                [sys.executable, "-m", "bench.s1_worker", stack.temporal_address],
                dict(os.environ),
                stack.logs / "s1.log",
            ).start()
            stack.procs["s1-worker"] = s1
            client = await Client.connect(stack.temporal_address)
            await asyncio.sleep(2)
            await run_s1(client, 8, 100)  # warm-up
            s1_rates = [(await run_s1(client, 64, 640)).load.throughput for _ in range(3)]
            s1_rate = statistics.median(s1_rates)
            say(f"S1 c=64: {', '.join(f'{r:.1f}' for r in s1_rates)} tasks/s (median {s1_rate:.1f})")
            s1.stop()
            for backend in args.backends:
                if backend == "sqlite":
                    url = f"sqlite+aiosqlite:///{tmp}/ains-{uuid.uuid4().hex[:6]}.db"
                    out = Path(args.profile) if args.profile else None
                    results.append(await run_backend(stack, backend, url, args.tasks, out))
                else:
                    admin = os.environ.get("AINS_BENCH_DATABASE_URL") or LOCAL_POSTGRES
                    if not await postgres_reachable(admin):
                        say("Postgres not reachable: skipped")
                        continue
                    async with scratch_postgres(admin, "ains_bench") as url:
                        results.append(await run_backend(stack, backend, url, args.tasks))
        finally:
            stack.stop_all()
            if args.keep_logs:  # every process's log, e.g. to find what a "duration exceeded" warning followed
                shutil.copytree(stack.logs, args.keep_logs, dirs_exist_ok=True)
    written.add(*report(results, s1_rates, s1_rate, args.tasks))
    return written


def report(results: list[BackendResult], s1_rates: list[float], s1: float, tasks: int) -> list[str]:
    target = 0.8 * min(80.0, s1)
    lines = [
        f"One agent with {SLOTS} slots, {TASK_SECONDS * 1000:.0f} ms per task (the slots could take "
        f"{SLOTS / TASK_SECONDS:.0f} tasks/s); {tasks} tasks per scenario, submitted as one batch.",
        "",
        f"Ceiling of this machine: S1 (bare Temporal, one no-op activity) closed loop at c=64: "
        f"{', '.join(f'{r:.1f}' for r in s1_rates)} tasks/s, median **{s1:.1f}**. "
        f"Drain target 0.8 x min(80, S1) = **{target:.1f} tasks/s**.",
        "",
        "| measure | target | " + " | ".join(r.backend for r in results) + " |",
        "|---|---|" + "---|" * len(results),
        f"| drain rate, first start to last finish (tasks/s), median of {DRAIN_RUNS} (each run) | ≥ {target:.1f} | "
        + " | ".join(f"**{r.drain_rate:.1f}** ({', '.join(f'{x:.1f}' for x in r.drain_rates)})" for r in results)
        + " |",
        "| worker CPU per drained task (ms) | | " + " | ".join(f"{r.drain_worker_cpu_ms:.0f}" for r in results) + " |",
        "| CPU per drained task by process, submit to last finish (ms) | | "
        + " | ".join(
            f"{sum(r.drain_cpu_ms.values()):.0f} ({', '.join(f'{k} {v:.1f}' for k, v in r.drain_cpu_ms.items())})"
            for r in results
        )
        + " |",
        f"| CPU of api + worker while {tasks} wait and no slot frees (% of one core) | < 2 | "
        + " | ".join(
            f"{r.idle_cpu_percent:.2f} ({', '.join(f'{k} {v:.2f}' for k, v in r.idle_parts.items())})" for r in results
        )
        + " |",
        f"| priority-10 task submitted 2 s into a {tasks} drain: wait to start (s) | < 1 | "
        + " | ".join(f"{r.high_wait:.2f}" for r in results)
        + " |",
        "| priority-1 task submitted with it: wait to start (s) | bounded | "
        + " | ".join(f"{r.low_wait:.1f}" for r in results)
        + " |",
        "| POST /v1/tasks during that drain, 8 clients: p50 / p95 (ms) | p95 < 100 | "
        + " | ".join(f"{r.probe_p50:.0f} / {r.probe_p95:.0f} ({r.probe_count} requests)" for r in results)
        + " |",
        "| the same 8 clients with no backlog at all (baseline): p50 / p95 (ms) | | "
        + " | ".join(
            f"{r.idle_probe_p50:.0f} / {r.idle_probe_p95:.0f} ({r.idle_probe_count} requests)" for r in results
        )
        + " |",
        "| drain rate with that API load (tasks/s) | | "
        + " | ".join(f"{r.probe_drain_rate:.1f}" for r in results)
        + " |",
        f"| client B's 20 tasks behind A's {tasks}: wait p50 / max (s) | p50 < 2 | "
        + " | ".join(f"{r.b_wait_p50:.2f} / {r.b_wait_max:.2f}" for r in results)
        + " |",
        "| B's share of the slots while both had work (weight 1:1) | ≈ 0.5 | "
        + " | ".join(f"{r.b_share:.2f}" for r in results)
        + " |",
        "| 'workflow task duration exceeded' warnings in the worker's log, all scenarios | 0 | "
        + " | ".join(str(r.slow_workflow_tasks) for r in results)
        + " |",
        "",
        f"Method: the drain {DRAIN_RUNS} times (median), the other scenarios once, per backend; rates from the "
        "registry's started_at / completed_at of the scenario's tasks; CPU from psutil (user + system) of the `ains api` and `ains worker` processes; the "
        "API probe's tasks go to a separate idle agent so they do not join the backlog.",
        "",
    ]
    if any(r.handover_stages for r in results):
        lines += [
            f"Where a hand-over's time goes (medians over up to {HANDOVER_SAMPLE} tasks from the middle third of "
            "the last drain, ms; the registry's attempt times and the runs' Temporal histories, one clock). With "
            f"{SLOTS} slots, each slot turns over every {SLOTS} / drain rate seconds, so the first three rows "
            "make up most of one turn (the rest: commits and hand-offs between them):",
            "",
            "| stage | " + " | ".join(r.backend for r in results) + " |",
            "|---|" + "---|" * len(results),
        ]
        for stage in STAGES:
            cells = [f"{r.handover_stages[stage]:.1f}" if stage in r.handover_stages else "n/a" for r in results]
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
        lines.append(
            "| one slot turn, from the drain rate | "
            + " | ".join(f"{SLOTS / r.drain_rates[-1] * 1000:.0f}" if r.drain_rates else "n/a" for r in results)
            + " |"
        )
        lines.append("")
    for r in results:
        if r.profile:
            lines += [f"Worker profile during the {r.backend} drain (share of busy samples):", "", "```"]
            lines += [*r.profile, "```", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--backends", type=lambda s: s.split(","), default=["sqlite", "postgres"])
    parser.add_argument("--profile", metavar="FILE", help="py-spy the worker for 15 s of the SQLite drain into FILE")
    parser.add_argument("--keep-logs", metavar="DIR", help="copy every process's log into DIR at the end")
    args = parser.parse_args()
    print(asyncio.run(run(args)).write(RESULTS))


if __name__ == "__main__":
    main()
