"""Routing speed: one routing decision among 10,000 agents with 50 capability tags, on SQLite and Postgres.

Times ``core.routing.decide.route_attempt`` (the body of the ``route_task`` local activity: load candidates and
live load, filter, score, reserve the winner, write the receipt) for every strategy, with the registry
holding 10,000 agents (3 tags each out of 50), 1,000 running attempts and a task row per decision.
Each decision runs in its own transaction that is rolled back, so every sample sees the same registry.

    .venv/bin/python -m bench.routing_speed [--agents 10000] [--tags 50] [--samples 300] [--postgres URL]

Writes bench/results/ROUTING.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text, update

from ains.core.platform.db import Database
from ains.core.platform.migrate import upgrade
from ains.core.platform.settings import Settings
from ains.core.routing.decide import choose, route_attempt
from ains.core.routing.snapshot import CandidateCache
from ains.models.routing import Strategy
from ains.models.tables import Agent, AgentCapability, Task, TaskAttempt
from ains.models.workflow_io import RouteOutcome, RouteRequest
from bench.report import Report
from bench.stats import pct
from tests.support.databases import postgres_reachable, scratch_postgres

RESULTS = Path(__file__).parent / "results" / "ROUTING.md"
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TAGS_PER_AGENT = 3
RUNNING_ATTEMPTS = 1000
WARMUP = 20
UPKEEP_SAMPLES = 5
DEFAULT_CACHE_TTL = Settings.model_fields["routing_cache_ttl_seconds"].default


async def populate(db: Database, agents: int, tags: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    tag_names = [f"tag{i:02d}" for i in range(tags)]
    now = datetime.now(UTC)
    agent_rows = []
    cap_rows = []
    for i in range(agents):
        agent_id = f"agent-{i:05d}"
        agent_rows.append(
            {
                "id": agent_id,
                "display_name": agent_id,
                "endpoint_url": f"http://127.0.0.1:9/{agent_id}",
                "max_concurrency": rng.choice([1, 2, 4, 8]),
                "status": "available" if rng.random() > 0.05 else "unavailable",
                "trust_score": round(rng.uniform(0.2, 1.0), 4),
                "total_tasks": 0,
                "successful_tasks": 0,
                "failed_tasks": 0,
                "timed_out_tasks": 0,
                "avg_response_ms": round(rng.uniform(20, 2000), 1) if rng.random() > 0.1 else None,
                "last_assigned_at": now - timedelta(seconds=rng.randint(0, 86_400)) if rng.random() > 0.2 else None,
                "created_at": now,
                "updated_at": now,
            }
        )
        for tag in rng.sample(tag_names, TAGS_PER_AGENT):
            cap_rows.append(
                {
                    "agent_id": agent_id,
                    "tag": tag,
                    "version": rng.choice(["1.0", "1.5", "2.0", "2.3"]),
                    "trust_score": round(rng.uniform(0.2, 1.0), 4),
                    "total_tasks": rng.randint(0, 20),
                    "successful_tasks": 0,
                }
            )
    holder_rows = [
        {
            "id": f"tsk_hold_{i}",
            "client_id": "bench",
            "type": "echo",
            "input": {},
            "required_capabilities": [],
            "priority": 5,
            "timeout_seconds": 60,
            "max_attempts": 1,
            "request_hash": "",
            "status": "running",
            "attempts": 1,
            "workflow_id": f"task-hold-{i}",
            "created_at": now,
            "updated_at": now,
        }
        for i in range(RUNNING_ATTEMPTS)
    ]
    attempt_rows = [
        {
            "task_id": f"tsk_hold_{i}",
            "attempt": 1,
            "agent_id": f"agent-{rng.randrange(agents):05d}",
            "status": "running",
            "started_at": now,
        }
        for i in range(RUNNING_ATTEMPTS)
    ]
    async with db.transaction() as session:
        for table, rows in (
            (Agent, agent_rows),
            (AgentCapability, cap_rows),
            (Task, holder_rows),
            (TaskAttempt, attempt_rows),
        ):
            for start in range(0, len(rows), 2000):
                await session.execute(insert(table), rows[start : start + 2000])
    if db.engine.dialect.name == "postgresql":  # statistics, as autovacuum would gather after a bulk load
        async with db.engine.connect() as conn:
            await (await conn.execution_options(isolation_level="AUTOCOMMIT")).execute(text("VACUUM ANALYZE"))
    return tag_names


async def time_routing(
    db: Database, tag_names: list[str], strategy: Strategy, samples: int, cache: CandidateCache | None
) -> tuple[list[float], list[float]]:
    """Per sample: the routing decision alone (``choose``: reads only), then the whole step (``route_attempt``)."""
    rng = random.Random(11)
    choosing: list[float] = []
    timings: list[float] = []
    if cache is not None:  # a worker in steady state has every hot tag in its snapshot
        async with db.session() as session:
            for tag in tag_names:
                await cache.candidates(session, [tag])
    for i in range(samples + WARMUP):
        tag = rng.choice(tag_names)
        requirement = tag if i % 3 else f"{tag}>=1.5"
        task_id = f"tsk_bench_{uuid.uuid4().hex}"
        async with db.sessions() as session, session.begin():
            session.add(
                Task(
                    id=task_id,
                    client_id="bench",
                    type="echo",
                    input={},
                    required_capabilities=[requirement],
                    timeout_seconds=60,
                    max_attempts=1,
                    workflow_id=f"task-{task_id}",
                )
            )
            await session.flush()
            request = RouteRequest(
                task_id=task_id, attempt=1, required_capabilities=[requirement], failed_agent_ids=[], strategy=strategy
            )
            started = time.perf_counter()
            await choose(session, request, cache)
            chose = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            decision = (await route_attempt(session, request, cache)).decision
            elapsed = (time.perf_counter() - started) * 1000
            assert decision.outcome is RouteOutcome.ASSIGNED, decision.reason
            await session.rollback()
        if i >= WARMUP:
            choosing.append(chose)
            timings.append(elapsed)
    return choosing, timings


async def run_backend(name: str, url: str, args: argparse.Namespace, maintenance: list[str]) -> list[str]:
    await upgrade(url)
    db = Database(url)
    try:
        started = time.perf_counter()
        tags = await populate(db, args.agents, args.tags)
        print(f"[{name}] registry populated in {time.perf_counter() - started:.1f}s", flush=True)
        lines = []
        runs: list[tuple[Strategy, CandidateCache | None]] = [(s, CandidateCache(DEFAULT_CACHE_TTL)) for s in Strategy]
        runs += [(s, None) for s in Strategy]
        for strategy, cache in runs:
            choosing, timings = await time_routing(db, tags, strategy, args.samples, cache)
            chose, median = statistics.median(choosing), statistics.median(timings)
            mode = f"worker snapshot (TTL {DEFAULT_CACHE_TTL:g} s)" if cache else "no snapshot: from the DB"
            lines.append(
                f"| {name} | {strategy.value} | {mode} | {chose:.2f} | {pct(choosing, 95):.2f} | "
                f"{'yes' if chose < 5 else 'no'} | {median:.2f} | {pct(timings, 95):.2f} | {pct(timings, 99):.2f} | "
                f"{'yes' if median < 5 else 'no'} |"
            )
            print(lines[-1], flush=True)
        maintenance.append(await time_snapshot_upkeep(db, name, args.agents))
        return lines
    finally:
        await db.dispose()


async def time_snapshot_upkeep(db: Database, name: str, agents: int) -> str:
    """What keeping a worker's snapshot costs, off the median path: the first full load, and a refresh
    (agents changed since the last one, plus a count) with 100 agents changed, as after 100 finished tasks."""
    full: list[float] = []
    delta: list[float] = []
    for _ in range(UPKEEP_SAMPLES):
        cache = CandidateCache(0.0)
        async with db.session() as session:
            started = time.perf_counter()
            await cache.candidates(session, ["tag00"])
            full.append((time.perf_counter() - started) * 1000)
        async with db.transaction() as session:
            changed = [f"agent-{i:05d}" for i in random.sample(range(agents), 100)]
            await session.execute(update(Agent).where(Agent.id.in_(changed)).values(trust_score=Agent.trust_score))
        async with db.session() as session:
            started = time.perf_counter()
            await cache.candidates(session, ["tag00"])
            delta.append((time.perf_counter() - started) * 1000)
    return f"| {name} | {statistics.median(full):.1f} | {statistics.median(delta):.1f} | {pct(delta, 95):.1f} |"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tags", type=int, default=50)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--postgres", default=os.environ.get("AINS_BENCH_DATABASE_URL", DEFAULT_PG))
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    rows: list[str] = []
    maintenance: list[str] = []
    report = Report("Routing speed", "python -m bench.routing_speed")
    with tempfile.TemporaryDirectory() as tmp:
        rows += await run_backend("sqlite", f"sqlite+aiosqlite:///{tmp}/routing.db", args, maintenance)
    if not args.no_postgres:
        if not await postgres_reachable(args.postgres):
            print(f"[postgres] skipped: not reachable at {args.postgres.split('@')[-1]}")
        else:
            async with scratch_postgres(args.postgres, "ains_bench") as url:
                rows += await run_backend("postgres", url, args, maintenance)

    report.add(
        f"Registry: {args.agents:,} agents, {args.tags} tags ({TAGS_PER_AGENT} per agent, so about "
        f"{args.agents * TAGS_PER_AGENT // args.tags} agents per tag), {RUNNING_ATTEMPTS:,} running attempts. "
        f"Each sample is one `route_attempt` call (candidates, live load, filters, strategy, reservation, "
        f"receipt) for a random tag, every third with a version constraint; {WARMUP} warm-up calls, then "
        f"{args.samples} timed calls per strategy, each in a transaction that is rolled back. The load "
        "generator is this process. A worker keeps a snapshot of every agent (capabilities, versions, trust, "
        f"availability, limits), brought up to date at most every {DEFAULT_CACHE_TTL:g} s "
        "(AINS_ROUTING_CACHE_TTL_SECONDS) by reading only the agents changed since the last refresh; live "
        "load is read fresh for every decision in the same query as the routing queue's length. "
        "'worker snapshot' rows are how workers route (a refresh falls inside some of the timed calls); "
        "'no snapshot' rows read the candidates from the database on every call "
        "(AINS_ROUTING_CACHE_TTL_SECONDS=0). On Postgres the bulk-loaded registry is vacuumed and analysed "
        "before timing, as autovacuum would do shortly after such a load.",
        "",
        "Goal: median under 5 ms. Two timings per sample: the routing decision (`core.routing.decide.choose`: "
        "read live load and the queue length, candidates, filters, strategy; reads only) and the whole step "
        "(`route_attempt`: the decision plus its four writes: the agent's row lock and assignment time, the "
        "attempt row holding the slot, the task, the receipt).",
        "",
        "| backend | strategy | candidate data | decision median ms | decision p95 ms | decision < 5 ms "
        "| step median ms | step p95 ms | step p99 ms | step < 5 ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Snapshot upkeep (medians of {UPKEEP_SAMPLES}, not on any decision's path except a worker's first): "
        "a full load of the registry, and a refresh after 100 agents changed.",
        "",
        "| backend | full load ms | refresh ms (100 changed) | refresh p95 ms |",
        "|---|---|---|---|",
        *maintenance,
        "",
    )
    report.write(RESULTS)


if __name__ == "__main__":
    asyncio.run(main())
