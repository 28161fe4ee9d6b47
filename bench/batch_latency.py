"""POST /v1/tasks/batch latency for batches of 1,000 (and 100) tasks.

Real processes (Temporal dev server, `ains api`, `ains worker`) on a fresh SQLite registry. Every task of
every batch depends on one blocker task that never runs (its only agent is down), so the measurement is the
request itself — validation, one transaction for all rows, one workflow start — and the batch workflows'
child starts do not pile agent calls onto the machine while later requests are timed.

    .venv/bin/python -m bench.batch_latency [--runs 20]

Writes bench/results/BATCH.md. Goal: p95 under 500 ms for 1,000 tasks (seed), 100 ms for 100 tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.harness import BENCH_AGENT_ID, Stack, say_to
from bench.stats import pct
from core.agents import update_agent
from core.db import Database
from models.agents import AgentStatus, AgentUpdate

RESULTS = Path(__file__).parent / "results" / "BATCH.md"
say = say_to("batch")


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp))
        try:
            await stack.start_temporal([])
            await stack.start_demo_agent()
            await stack.bootstrap(f"sqlite+aiosqlite:///{tmp}/ains.db")
            db = Database(stack.database_url)
            async with db.transaction() as session:
                await update_agent(session, BENCH_AGENT_ID, AgentUpdate(status=AgentStatus.UNAVAILABLE))
            await db.dispose()
            await stack.start_api()
            stack.start_worker()
            headers = {"Authorization": f"Bearer {stack.admin_key}"}
            timings: dict[int, list[float]] = {1000: [], 100: []}
            async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
                blocker = (
                    await http.post("/v1/tasks", headers=headers, json={"type": "echo", "queue_timeout_seconds": 86400})
                ).json()["id"]
                for size in (1000, 100):
                    body = {
                        "tasks": [{"type": "echo", "input": {"i": i}, "depends_on": [blocker]} for i in range(size)]
                    }
                    for index in range(args.runs + 2):
                        started = time.perf_counter()
                        response = await http.post("/v1/tasks/batch", headers=headers, json=body)
                        elapsed = (time.perf_counter() - started) * 1000
                        response.raise_for_status()
                        if index >= 2:  # warm-up
                            timings[size].append(elapsed)
                        await asyncio.sleep(1.0 if size == 1000 else 0.2)  # let the batch workflow start its children
                    say(f"{size}: median {statistics.median(timings[size]):.0f} ms")
        finally:
            stack.stop_all()
    rows = [
        f"| {size} | {statistics.median(v):.0f} | {pct(v, 95):.0f} | {pct(v, 99):.0f} | {goal} | "
        f"{'yes' if pct(v, 95) < goal else 'no'} |"
        for size, v, goal in ((1000, timings[1000], 500), (100, timings[100], 100))
    ]
    return "\n".join(
        [
            "# Batch submission latency",
            "",
            f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; "
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; API, worker, Temporal dev server and the load generator on the "
            f"same machine; registry on SQLite. {args.runs} timed requests per size after 2 warm-up requests, one "
            "at a time.",
            "",
            "| tasks per batch | p50 ms | p95 ms | p99 ms | p95 goal ms | met |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "Reproduce: `.venv/bin/python -m bench.batch_latency`.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
