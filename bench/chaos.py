"""`python -m bench.chaos` (or `make chaos`): SIGKILL the worker mid-flight, start it again, check nothing is lost.

Two scenarios. ``running`` (the default): 200 tasks submitted one by one to an agent with room for all, the worker
killed while half of them are in their agent call. ``queued``: a batch of 300 behind an agent with 4 slots (tasks
queued ahead of their runs, each run started by its hand-over), the worker killed while the batch drains, so
reservations, eager starts and calls are cut at every step.

Checks that every task finishes exactly once: all succeed, one attempt row and one trust record per attempt,
the agent's counters equal the attempts, no duplicate workflow or task; for ``queued`` also that no agent was ever
over its slots and nothing is left waiting or running. Writes bench/results/CHAOS.md (CHAOS_QUEUED.md).
Exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from ains.core.agents.registry import update_agent
from ains.core.platform.db import Database
from ains.models.agents import AgentUpdate
from ains.models.tables import Agent, Task, TaskAttempt, TaskWait, TrustRecord
from bench.harness import BENCH_AGENT_ID, ROOT, Stack, http_ok, say_to, wait_until
from bench.report import Report

HEARTBEAT_TIMEOUT = "3"
QUEUED_SLOTS = 4
# The queued scenario's worker dies once this share of the batch is done.
QUEUED_KILL_AT = 0.25


async def run(tasks: int, delay: float, out: Path, queued: bool = False) -> int:
    say = say_to("chaos")
    report = Report("Chaos", f"python -m bench.chaos{' --scenario queued' if queued else ''}")
    workdir = Path(tempfile.mkdtemp(prefix="ains-chaos-"))
    stack = Stack(workdir)
    checks: list[tuple[str, bool, str]] = []
    ok = False
    try:
        await stack.start_temporal(["default"])
        await stack.start_demo_agent()
        await stack.bootstrap(f"sqlite+aiosqlite:///{workdir / 'ains.db'}")
        db = Database(stack.database_url)
        if queued:
            async with db.transaction() as session:
                await update_agent(session, BENCH_AGENT_ID, AgentUpdate(max_concurrency=QUEUED_SLOTS))
        tuning = {
            "AINS_AGENT_HEARTBEAT_TIMEOUT_SECONDS": HEARTBEAT_TIMEOUT,
            "AINS_AGENT_HEARTBEAT_INTERVAL_SECONDS": "0.5",
        }
        stack.start_worker("worker", **tuning)
        await stack.start_api(**tuning)
        headers = {"Authorization": f"Bearer {stack.admin_key}"}
        async with (
            httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http,
            httpx.AsyncClient(base_url=stack.demo_url) as agent,
        ):
            await wait_until("API ready", lambda: http_ok(f"{stack.api_url}/ready"), stack.procs["api"])
            say(f"submitting {tasks} tasks (each takes {delay}s at the agent)")
            sem = asyncio.Semaphore(32)

            async def submit(i: int) -> str:
                async with sem:
                    response = await http.post("/v1/tasks", headers=headers, json=_task_body(i, delay))
                    response.raise_for_status()
                    return str(response.json()["id"])

            if queued:
                body = {"tasks": [_task_body(i, delay) | {"queue_timeout_seconds": 3600} for i in range(tasks)]}
                response = await http.post("/v1/tasks/batch", headers=headers, json=body)
                response.raise_for_status()
                ids = [str(task["id"]) for task in response.json()["tasks"]]
                in_flight = await _wait_until_done(db, ids, int(tasks * QUEUED_KILL_AT))
                say(f"SIGKILL worker with {in_flight} of {tasks} tasks done, the rest draining or queued")
            else:
                ids = await asyncio.gather(*(submit(i) for i in range(tasks)))
                in_flight = await _wait_until_at_agent(agent, ids, tasks // 2)
                say(f"SIGKILL worker with {in_flight} of {tasks} tasks at the agent")
            stack.procs["worker"].kill()
            await asyncio.sleep(1)
            stack.start_worker("worker-2", **tuning)
            started = time.monotonic()
            final = await _wait_until_done(db, ids, tasks, timeout=180)
            recovery = time.monotonic() - started
            say(f"{final}/{tasks} tasks final {recovery:.1f}s after the restart")
            calls = (await agent.get("/calls")).json()

        async with db.session() as session:
            rows = (await session.execute(select(Task.status, Task.attempts).where(Task.id.in_(ids)))).all()
            attempt_rows = (
                await session.execute(
                    select(
                        TaskAttempt.task_id, TaskAttempt.attempt, TaskAttempt.started_at, TaskAttempt.finished_at
                    ).where(TaskAttempt.task_id.in_(ids))
                )
            ).all()
            left_waiting = (await session.execute(select(func.count()).select_from(TaskWait))).scalar_one()
            left_running = (
                await session.execute(
                    select(func.count()).select_from(TaskAttempt).where(TaskAttempt.status == "running")
                )
            ).scalar_one()
            records = (
                await session.execute(
                    select(TrustRecord.task_id, TrustRecord.attempt).where(TrustRecord.task_id.in_(ids))
                )
            ).all()
            agent_total = (
                await session.execute(select(Agent.total_tasks).where(Agent.id == BENCH_AGENT_ID))
            ).scalar_one()
            task_rows = (await session.execute(select(func.count()).select_from(Task))).scalar_one()
        await db.dispose()
        attempts = [(task_id, attempt) for task_id, attempt, *_ in attempt_rows]
        statuses = Counter(s for s, _ in rows)
        per_task_calls = Counter(calls.get(f"{i}:1", 0) for i in ids)
        checks = [
            ("every task finished and succeeded", statuses == Counter({"succeeded": tasks}), str(dict(statuses))),
            ("no task used a second attempt", all(a == 1 for _, a in rows), str(Counter(a for _, a in rows))),
            ("one attempt row per task", sorted(attempts) == sorted((i, 1) for i in ids), f"{len(attempts)} rows"),
            ("trust records equal attempts", sorted(records) == sorted(attempts), f"{len(records)} records"),
            ("agent counters equal attempts", agent_total == len(attempts), f"total_tasks={agent_total}"),
            ("no duplicate task rows", task_rows == tasks, f"{task_rows} task rows"),
            (
                "every task reached the agent; calls cut by the kill were repeated with the same attempt number "
                "(at-least-once delivery; agents deduplicate on task id + attempt)",
                per_task_calls[0] == 0 and (queued or sum(n * k for n, k in per_task_calls.items()) > tasks),
                f"tasks by number of calls received: {dict(sorted(per_task_calls.items()))}",
            ),
        ]
        if queued:
            peak = _peak_overlap([(started, finished) for *_, started, finished in attempt_rows])
            checks += [
                (
                    f"the agent never held more than its {QUEUED_SLOTS} slots (overlapping reservations)",
                    peak <= QUEUED_SLOTS,
                    f"at most {peak} at once",
                ),
                (
                    "nothing left waiting in the dispatch queue or holding a slot",
                    left_waiting == 0 and left_running == 0,
                    f"{left_waiting} waiting, {left_running} running",
                ),
            ]
        if queued:
            title = f"Chaos: SIGKILL the worker while a batch of {tasks} drains behind {QUEUED_SLOTS} slots"
            setup = (
                f"{tasks} tasks (each {delay}s at the demo agent, max 2 attempts) were submitted as one batch to an "
                f"agent with {QUEUED_SLOTS} slots, so they queued ahead of their runs; the only worker was "
                f"SIGKILLed with {in_flight} of them done"
            )
        else:
            title = f"Chaos: SIGKILL the worker during {tasks} running tasks"
            setup = (
                f"{tasks} tasks (each {delay}s at the demo agent, max 2 attempts) were submitted over the API; the "
                f"only worker was SIGKILLed with {in_flight} of them in their agent call"
            )
        report.title = title
        report.add(
            f"{setup}, and a new worker started 1 s later "
            f"(heartbeat timeout {HEARTBEAT_TIMEOUT} s). All tasks were final {recovery:.1f} s after the restart.",
            "",
            "| check | result | detail |",
            "|---|---|---|",
            *[f"| {name} | {'pass' if passed else '**FAIL**'} | {detail} |" for name, passed, detail in checks],
            "",
        )
        await asyncio.to_thread(report.write, out)
        ok = all(passed for _, passed, _ in checks)
        for name, passed, detail in checks:
            say(f"{'PASS' if passed else 'FAIL'} {name}: {detail}")
    finally:
        stack.stop_all()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"kept {workdir} for inspection")
    return 0 if ok else 1


def _task_body(i: int, delay: float) -> dict[str, Any]:
    return {"type": "echo", "input": {"i": i, "delay_seconds": delay}, "max_attempts": 2}


async def _wait_until_at_agent(agent: httpx.AsyncClient, ids: list[str], count: int) -> int:
    """How many of the tasks are in their agent call, once ``count`` are (or after a minute)."""
    deadline = time.monotonic() + 60
    while True:
        calls = (await agent.get("/calls")).json()
        in_flight = sum(1 for i in ids if calls.get(f"{i}:1"))
        if in_flight >= count or time.monotonic() > deadline:
            return in_flight
        await asyncio.sleep(0.1)


async def _wait_until_done(db: Database, ids: list[str], count: int, timeout: float = 60) -> int:
    """How many of the tasks are final, once ``count`` are (or after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        async with db.session() as session:
            done = (
                await session.execute(
                    select(func.count()).select_from(Task).where(Task.id.in_(ids), Task.completed_at.is_not(None))
                )
            ).scalar_one()
        if done >= count or time.monotonic() > deadline:
            return int(done)
        await asyncio.sleep(0.1)


def _peak_overlap(spans: list[tuple[datetime, datetime | None]]) -> int:
    """The most reservations (attempt rows, start to finish) that overlapped at any moment."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans if end is not None])
    held = peak = 0
    for _, change in edges:
        held += change
        peak = max(peak, held)
    return peak


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--scenario", choices=["running", "queued"], default="running")
    parser.add_argument("--tasks", type=int, help="default: 200 running, 300 queued")
    parser.add_argument("--delay", type=float, help="seconds each task spends at the agent (default: 3.0 / 0.2)")
    parser.add_argument("--out", type=Path, help="default: bench/results/CHAOS.md / CHAOS_QUEUED.md")
    args = parser.parse_args()
    queued = args.scenario == "queued"
    tasks = args.tasks or (300 if queued else 200)
    delay = args.delay if args.delay is not None else (0.2 if queued else 3.0)
    out = args.out or ROOT / "bench" / "results" / ("CHAOS_QUEUED.md" if queued else "CHAOS.md")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return asyncio.run(run(tasks, delay, out, queued))


if __name__ == "__main__":
    sys.exit(main())
