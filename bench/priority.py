"""Priority under a backlog: does a priority-10 task overtake 500 queued priority-2 tasks, and does a
priority-1 task still start in bounded time while new priority-2 work keeps arriving?

Real processes (Temporal dev server, `ains api`, `ains worker`, the demo agent) on a fresh SQLite registry.
One agent with `max_concurrency` 4 does every task (`echo` with a 50 ms delay), so tasks queue at AINS's
routing step. Then:

1. 500 priority-2 tasks are submitted and left to queue;
2. one priority-10 and one priority-1 task are submitted;
3. new priority-2 tasks keep arriving at about the agent's service rate, so the backlog never drains by itself.

Reported: how many priority-2 tasks started after the priority-10 task was submitted but before it started
(ideally at most the 4 slots already being handed over), and the priority-1 task's wait against its bound:
with aging, it outranks any priority-2 task submitted more than `(2 - 1) * aging` seconds after it, so it
waits at most for the tasks ahead of it at submission plus that window.

    .venv/bin/python -m bench.priority [--backlog 500] [--aging 5]

Writes bench/results/PRIORITY.md.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from ains.core.agents.registry import update_agent
from ains.core.platform.db import Database
from ains.models.agents import AgentUpdate
from bench.harness import BENCH_AGENT_ID, Stack, say_to
from bench.report import Report

RESULTS = Path(__file__).parent / "results" / "PRIORITY.md"
CONCURRENCY = 4
TASK_SECONDS = 0.05
SUBMIT_BATCH = 25
SUBMIT_RETRIES = 10
say = say_to("priority")


async def submit(http: httpx.AsyncClient, key: str, priority: int) -> str:
    """Submit one task; a 503 (registry busy: nothing was accepted) is retried after its Retry-After."""
    body = {
        "type": "echo",
        "input": {"delay_seconds": TASK_SECONDS},
        "priority": priority,
        "queue_timeout_seconds": 3600,
        "max_attempts": 1,
        "idempotency_key": uuid.uuid4().hex,  # so a retried request can never make two tasks
    }
    for _ in range(SUBMIT_RETRIES):
        response = await http.post("/v1/tasks", headers={"Authorization": f"Bearer {key}"}, json=body)
        if response.status_code != 503:
            break
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    response.raise_for_status()
    return str(response.json()["id"])


async def started_at(http: httpx.AsyncClient, key: str, task_id: str) -> datetime | None:
    body = (await http.get(f"/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {key}"})).json()
    return datetime.fromisoformat(body["started_at"]) if body.get("started_at") else None


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp))
        try:
            await stack.start_temporal([])
            await stack.start_demo_agent()
            await stack.bootstrap(f"sqlite+aiosqlite:///{tmp}/ains.db")
            db = Database(stack.database_url)
            async with db.transaction() as session:
                await update_agent(session, BENCH_AGENT_ID, AgentUpdate(max_concurrency=CONCURRENCY))
            await db.dispose()
            aging = {"AINS_PRIORITY_AGING_SECONDS": str(args.aging)}
            await stack.start_api(**aging)
            stack.start_worker(**aging)
            key = stack.admin_key
            async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as http:
                say(f"submitting {args.backlog} priority-2 tasks")
                backlog: list[str] = []
                for begin in range(0, args.backlog, SUBMIT_BATCH):  # concurrently, so the queue builds up
                    size = min(SUBMIT_BATCH, args.backlog - begin)
                    backlog += await asyncio.gather(*(submit(http, key, 2) for _ in range(size)))
                say(f"{len(backlog)} submitted; waiting 2 s")
                await asyncio.sleep(2)
                high_submitted = datetime.now(UTC)
                high = await submit(http, key, 10)
                low_submitted = datetime.now(UTC)
                low = await submit(http, key, 1)
                say("priority-10 and priority-1 submitted; keeping new priority-2 work arriving")
                arrivals: list[str] = []
                deadline = time.monotonic() + args.max_seconds
                high_start = low_start = None
                while time.monotonic() < deadline and low_start is None:
                    arrivals.append(await submit(http, key, 2))
                    await asyncio.sleep(TASK_SECONDS / CONCURRENCY * 2)
                    if high_start is None:
                        high_start = await started_at(http, key, high)
                    low_start = await started_at(http, key, low)
                if high_start is None:
                    high_start = await started_at(http, key, high)
                backlog_starts = [s for s in [await started_at(http, key, t) for t in backlog] if s is not None]
                overtook_high = sum(1 for s in backlog_starts if high_start and high_submitted < s < high_start)
                ahead_of_low = sum(1 for s in backlog_starts if s > low_submitted)
                arrivals_starts = [s for s in [await started_at(http, key, t) for t in arrivals] if s is not None]
                late_before_low = sum(1 for s in arrivals_starts if low_start and s < low_start)
                drained = sorted(backlog_starts)
                span = (drained[-1] - drained[0]).total_seconds() if len(drained) > 1 else 0.0
                hand_over = (len(drained) - 1) / span if span > 0 else float("nan")
        finally:
            stack.stop_all()

    high_wait = (high_start - high_submitted).total_seconds() if high_start else float("nan")
    low_wait = (low_start - low_submitted).total_seconds() if low_start else None
    lines = [
        f"One agent, max_concurrency {CONCURRENCY}, "
        f"{TASK_SECONDS * 1000:.0f} ms per task; {args.backlog} priority-2 tasks queued first; "
        f"AINS_PRIORITY_AGING_SECONDS={args.aging}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| priority-10: wait from submission to start | {high_wait:.2f} s |",
        f"| priority-2 tasks that started after the priority-10 submission but before it | {overtook_high} "
        f"(slots already being handed over: up to {CONCURRENCY}) |",
        f"| priority-1: wait from submission to start | "
        f"{f'{low_wait:.1f} s' if low_wait is not None else f'not started within {args.max_seconds} s'} |",
        f"| queued priority-2 tasks still ahead of it at submission that started before it | {ahead_of_low} |",
        f"| priority-2 tasks submitted after it that started before it | {late_before_low} |",
        f"| backlog hand-over rate: queued tasks started per second, first to last | {hand_over:.1f} "
        f"(at most {CONCURRENCY / TASK_SECONDS:.0f}: {CONCURRENCY} slots of {TASK_SECONDS * 1000:.0f} ms) |",
        "",
        "The priority-1 task is bounded: every queued task ahead of it drains, and new priority-2 arrivals "
        f"only overtake it during the first {args.aging:g} s ((2 - 1) x aging) after it was submitted.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=500)
    parser.add_argument("--aging", type=float, default=5.0)
    parser.add_argument("--max-seconds", type=float, default=240.0)
    args = parser.parse_args()
    report = Report("Priority under a backlog", "python -m bench.priority")
    report.add(asyncio.run(run(args)))
    print(report.write(RESULTS))


if __name__ == "__main__":
    main()
