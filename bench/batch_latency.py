"""POST /v1/tasks/batch latency for batches of 1,000 (and 100) tasks, on SQLite and on Postgres.

Real processes (Temporal dev server, `ains api`, `ains worker`) per backend: a fresh SQLite file, then a
Postgres database created for the run and dropped afterwards (admin URL from ``--postgres-url`` or
``AINS_TEST_DATABASE_URL``; skipped with a note when unreachable). Every task of every batch depends on one
blocker task that never runs (its only agent is down), so each task workflow starts, records that it waits
for its dependency, and then idles: the measurement is the request plus the starting of its workflows,
without 1,000 agent calls per batch.

Besides the request latency, every batch is followed until all its task workflows were started (the batch
workflow's result, from Temporal) and until every task reported its wait in the registry (the workflows ran),
so the latency cannot be bought by deferring work invisibly. The next request is sent only then, one at a
time. At the end the number of TaskWorkflow executions is counted on the Temporal server.

    .venv/bin/python -m bench.batch_latency [--runs 10] [--runs-100 20] [--backends sqlite,postgres]

Writes bench/results/BATCH.md. Goal: p95 under 500 ms for 1,000 tasks (seed), 100 ms for 100 tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from ains.core.agents.registry import update_agent
from ains.core.platform.db import Database
from ains.models.agents import AgentStatus, AgentUpdate
from ains.models.tables import Task
from bench.harness import BENCH_AGENT_ID, Stack, say_to
from bench.report import Report
from bench.stats import median, pct
from tests.support.databases import postgres_reachable, scratch_postgres

RESULTS = Path(__file__).parent / "results" / "BATCH.md"
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
GOALS = {1000: 500.0, 100: 100.0}
WARMUP = {1000: 1, 100: 2}
say = say_to("batch")


@dataclass
class Size:
    latency_ms: list[float] = field(default_factory=list)
    all_started_ms: list[float] = field(default_factory=list)
    all_running_ms: list[float] = field(default_factory=list)


@dataclass
class Backend:
    name: str
    sizes: dict[int, Size] = field(default_factory=lambda: {1000: Size(), 100: Size()})
    task_workflows: int | None = None
    expected_workflows: int = 0
    note: str = ""


@asynccontextmanager
async def registry(backend: str, tmp: str, postgres_url: str) -> AsyncIterator[str]:
    """A migrated-on-bootstrap database URL: a SQLite file, or a Postgres database dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp}/ains.db"
        return
    async with scratch_postgres(postgres_url, "ains_bench") as url:
        yield url


async def _all_running(db: Database, batch_id: str, size: int, timeout: float = 300) -> None:
    """Until every task of the batch has reported (through its workflow) that it waits for its dependency."""
    query = (
        select(func.count())
        .select_from(Task)
        .where(Task.parent_id == batch_id, Task.status_reason.like("waiting for%"))
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with db.session() as session:
            if (await session.execute(query)).scalar_one() >= size:
                return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"batch {batch_id}: not every task reported running within {timeout}s")


async def run_backend(name: str, args: argparse.Namespace) -> Backend:
    result = Backend(name)
    with tempfile.TemporaryDirectory() as tmp:
        async with registry(name, tmp, args.postgres_url) as url:
            stack = Stack(Path(tmp))
            db: Database | None = None
            try:
                await stack.start_temporal([])
                await stack.start_demo_agent()
                await stack.bootstrap(url)
                db = Database(url)
                async with db.transaction() as session:
                    await update_agent(session, BENCH_AGENT_ID, AgentUpdate(status=AgentStatus.UNAVAILABLE))
                await stack.start_api()
                stack.start_worker()
                temporal = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
                headers = {"Authorization": f"Bearer {stack.admin_key}"}
                async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as http:
                    blocker = await http.post(
                        "/v1/tasks", headers=headers, json={"type": "echo", "queue_timeout_seconds": 86400}
                    )
                    blocker_id = blocker.json()["id"]
                    result.expected_workflows = 1
                    for size in (1000, 100):
                        body = {
                            "tasks": [
                                {"type": "echo", "input": {"i": i}, "depends_on": [blocker_id]} for i in range(size)
                            ]
                        }
                        runs = args.runs if size == 1000 else args.runs_100
                        for index in range(runs + WARMUP[size]):
                            began = time.perf_counter()
                            response = await http.post("/v1/tasks/batch", headers=headers, json=body)
                            latency = (time.perf_counter() - began) * 1000
                            response.raise_for_status()
                            accepted = response.json()
                            started = await temporal.get_workflow_handle(accepted["workflow_id"]).result()
                            all_started = (time.perf_counter() - began) * 1000
                            if started != size:
                                raise RuntimeError(f"batch workflow started {started} of {size} task workflows")
                            await _all_running(db, accepted["batch_id"], size)
                            all_running = (time.perf_counter() - began) * 1000
                            result.expected_workflows += size
                            if index >= WARMUP[size]:
                                timed = result.sizes[size]
                                timed.latency_ms.append(latency)
                                timed.all_started_ms.append(all_started)
                                timed.all_running_ms.append(all_running)
                        timed = result.sizes[size]
                        say(
                            f"{name} {size}: request p50 {median(timed.latency_ms):.0f} ms, "
                            f"p95 {pct(timed.latency_ms, 95):.0f} ms; all started p50 "
                            f"{median(timed.all_started_ms):.0f} ms; all running p50 {median(timed.all_running_ms):.0f} ms"
                        )
                try:
                    counted = await temporal.count_workflows('WorkflowType="TaskWorkflow"')
                    result.task_workflows = counted.count
                except Exception as exc:  # visibility without counts: report, do not fail the run
                    result.note = f"could not count workflows: {exc}"
            finally:
                if db is not None:
                    await db.dispose()
                stack.stop_all()
    return result


def _row(backend: str, size: int, timed: Size) -> str:
    v = timed.latency_ms
    goal = GOALS[size]
    return (
        f"| {backend} | {size} | {len(v)} | {median(v):.0f} | {pct(v, 50):.0f} | {pct(v, 95):.0f} | {pct(v, 99):.0f} | "
        f"{goal:.0f} | {'yes' if pct(v, 95) < goal else 'no'} | {median(timed.all_started_ms):.0f} / "
        f"{pct(timed.all_started_ms, 95):.0f} | {median(timed.all_running_ms):.0f} / {pct(timed.all_running_ms, 95):.0f} |"
    )


def report(results: list[Backend], args: argparse.Namespace, skipped: dict[str, str]) -> str:
    rows = [_row(r.name, size, r.sizes[size]) for r in results for size in (1000, 100)]
    checks = [
        f"- {r.name}: {r.task_workflows if r.task_workflows is not None else 'n/a'} TaskWorkflow executions on the "
        f"Temporal server, {r.expected_workflows} expected (blocker + every batch item, warm-up included)"
        + (f"; {r.note}" if r.note else "")
        for r in results
    ]
    notes = [f"- {name}: not run ({why})" for name, why in skipped.items()]
    return "\n".join(
        [
            "API, worker, Temporal dev server, the registry database and the load generator on the same machine.",
            "",
            f"Method: per backend, a fresh stack; {args.runs} timed requests of 1,000 tasks after {WARMUP[1000]} "
            f"warm-up request, then {args.runs_100} of 100 tasks after {WARMUP[100]}, one at a time. Every item "
            "depends on one blocker task that never runs, so each task workflow starts, "
            "records in the registry that it waits, and idles. After each request the next one waits until the "
            "batch workflow reported all task workflows started (*all started*, from Temporal) and every task of "
            "the batch reported its wait in the registry (*all running*); both are measured from the moment the "
            "request was sent.",
            "",
            "| backend | tasks per batch | requests | median ms | p50 ms | p95 ms | p99 ms | p95 goal ms | met | "
            "all started p50 / p95 ms | all running p50 / p95 ms |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Cross-check on the Temporal server:",
            "",
            *checks,
            *notes,
            "",
            "Postgres: the admin URL from `--postgres-url` or `AINS_TEST_DATABASE_URL`.",
        ]
    )


async def run(args: argparse.Namespace) -> str:
    results: list[Backend] = []
    skipped: dict[str, str] = {}
    for backend in args.backends.split(","):
        if backend == "postgres" and not await postgres_reachable(args.postgres_url):
            skipped[backend] = f"Postgres at {args.postgres_url} unreachable"
            say(skipped[backend])
            continue
        say(f"{backend}: starting")
        results.append(await run_backend(backend, args))
    return report(results, args, skipped)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="timed requests of 1,000 tasks per backend")
    parser.add_argument("--runs-100", type=int, default=20, help="timed requests of 100 tasks per backend")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--postgres-url", default=os.environ.get("AINS_TEST_DATABASE_URL") or DEFAULT_POSTGRES)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = Report("Batch submission latency", "python -m bench.batch_latency")
    report.add(asyncio.run(run(args)))
    print(report.write(args.output))


if __name__ == "__main__":
    main()
