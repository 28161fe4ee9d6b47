"""`python -m bench.chaos` (or `make chaos`): SIGKILL the worker while 200 tasks are running, start it again.

Checks that every task finishes exactly once: all succeed, one attempt row and one trust record per attempt,
the agent's counters equal the attempts, no duplicate workflow or task. Writes bench/results/CHAOS.md.
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
from pathlib import Path

import httpx
from sqlalchemy import func, select

from bench.harness import BENCH_AGENT_ID, ROOT, Stack, http_ok, say_to, wait_until
from core.db import Database
from models.tables import Agent, Task, TaskAttempt, TrustRecord

HEARTBEAT_TIMEOUT = "3"


async def run(tasks: int, delay: float, out: Path) -> int:
    say = say_to("chaos")
    workdir = Path(tempfile.mkdtemp(prefix="ains-chaos-"))
    stack = Stack(workdir)
    checks: list[tuple[str, bool, str]] = []
    ok = False
    try:
        await stack.start_temporal(["default"])
        await stack.start_demo_agent()
        await stack.bootstrap(f"sqlite+aiosqlite:///{workdir / 'ains.db'}")
        tuning = {
            "AINS_AGENT_HEARTBEAT_TIMEOUT_SECONDS": HEARTBEAT_TIMEOUT,
            "AINS_AGENT_HEARTBEAT_INTERVAL_SECONDS": "0.5",
        }
        stack.start_worker("worker", **tuning)
        await stack.start_api(**tuning)
        headers = {"Authorization": f"Bearer {stack.admin_key}"}
        db = Database(stack.database_url)
        async with (
            httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http,
            httpx.AsyncClient(base_url=stack.demo_url) as agent,
        ):
            await wait_until("API ready", lambda: http_ok(f"{stack.api_url}/ready"), stack.procs["api"])
            say(f"submitting {tasks} tasks (each takes {delay}s at the agent)")
            sem = asyncio.Semaphore(32)

            async def submit(i: int) -> str:
                async with sem:
                    response = await http.post(
                        "/v1/tasks",
                        headers=headers,
                        json={"type": "echo", "input": {"i": i, "delay_seconds": delay}, "max_attempts": 2},
                    )
                    response.raise_for_status()
                    return str(response.json()["id"])

            ids = await asyncio.gather(*(submit(i) for i in range(tasks)))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                calls = (await agent.get("/calls")).json()
                in_flight = sum(1 for i in ids if calls.get(f"{i}:1"))
                if in_flight >= tasks // 2:
                    break
                await asyncio.sleep(0.1)
            say(f"SIGKILL worker with {in_flight} of {tasks} tasks at the agent")
            stack.procs["worker"].kill()
            await asyncio.sleep(1)
            stack.start_worker("worker-2", **tuning)
            started = time.monotonic()
            while time.monotonic() - started < 180:
                async with db.session() as session:
                    final = (
                        await session.execute(
                            select(func.count())
                            .select_from(Task)
                            .where(Task.id.in_(ids), Task.completed_at.is_not(None))
                        )
                    ).scalar_one()
                if final == tasks:
                    break
                await asyncio.sleep(0.5)
            recovery = time.monotonic() - started
            say(f"{final}/{tasks} tasks final {recovery:.1f}s after the restart")
            calls = (await agent.get("/calls")).json()

        async with db.session() as session:
            rows = (await session.execute(select(Task.status, Task.attempts).where(Task.id.in_(ids)))).all()
            attempts = (
                await session.execute(
                    select(TaskAttempt.task_id, TaskAttempt.attempt).where(TaskAttempt.task_id.in_(ids))
                )
            ).all()
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
                per_task_calls[0] == 0 and sum(n * k for n, k in per_task_calls.items()) > tasks,
                f"tasks by number of calls received: {dict(sorted(per_task_calls.items()))}",
            ),
        ]
        lines = [
            "# Chaos: SIGKILL the worker during 200 running tasks",
            "",
            f"Generated by `python -m bench.chaos` on {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC. {tasks} tasks "
            f"(each {delay}s at the demo agent, max 2 attempts) were submitted over the API; the only worker was "
            f"SIGKILLed with {in_flight} of them in their agent call, and a new worker started 1 s later "
            f"(heartbeat timeout {HEARTBEAT_TIMEOUT} s). All tasks were final {recovery:.1f} s after the restart.",
            "",
            "| check | result | detail |",
            "|---|---|---|",
            *[f"| {name} | {'pass' if passed else '**FAIL**'} | {detail} |" for name, passed, detail in checks],
            "",
        ]
        await asyncio.to_thread(_write, out, "\n".join(lines))
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


def _write(out: Path, text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--delay", type=float, default=3.0, help="seconds each task spends at the agent")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "CHAOS.md")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    return asyncio.run(run(args.tasks, args.delay, args.out))


if __name__ == "__main__":
    sys.exit(main())
