"""`python -m bench` (or `make bench`): run every benchmark and write bench/results/REPORT.md.

python -m bench            # full run (about 15 minutes on 2 cores)
python -m bench --quick    # fewer tasks and levels, one run (a couple of minutes)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import psutil
from temporalio.client import Client

from ains.core.platform.db import Database
from ains.workers.temporal_dev import find_binary
from bench import api_latency, profile
from bench.harness import Proc, Stack, http_ok, wait_until
from bench.loadgen import LoadClient
from bench.report import RESULTS, Report
from bench.stats import LoadResult, fmt, median
from bench.throughput import STAGES, LevelResult, breakdown, db_breakdown, run_s1, run_s2
from tests.support.databases import postgres_reachable, scratch_postgres

API_NAMESPACE = "ains-apibench"
LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@dataclass
class Config:
    quick: bool
    levels: list[int]
    totals: dict[int, int]
    runs: int
    warmup: int
    api_levels: list[int]
    api_requests: int
    api_runs: int
    agents: int
    tasks: int
    profile_seconds: int
    skip: set[str]


def make_config(args: argparse.Namespace) -> Config:
    skip = set(args.skip or [])
    if args.quick:
        return Config(True, [1, 16, 64], {1: 20, 16: 96, 64: 192}, 1, 20, [1, 8], 100, 1, 10_000, 100_000, 6, skip)
    return Config(
        False,
        [1, 4, 16, 64, 256],
        {1: 60, 4: 120, 16: 240, 64: 480, 256: 1024},
        3,
        40,
        [1, 8],
        400,
        3,
        10_000,
        100_000,
        10,
        skip,
    )


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def versions_section(report: Report, quick: bool) -> None:
    temporal_version = subprocess.run(
        [find_binary("temporal"), "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    report.add(
        f"Temporal: {temporal_version} (dev server, SQLite with WAL). Mode: {'--quick' if quick else 'full'}.",
        "",
    )


class MemorySampler:
    def __init__(self, procs: list[Proc]) -> None:
        self.procs = procs
        self.peak: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            for proc in self.procs:
                self.peak[proc.name] = max(self.peak.get(proc.name, 0.0), proc.rss_mb())
            await asyncio.sleep(0.5)

    def __enter__(self) -> MemorySampler:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


LOAD_GENERATOR = "bench client (load generator)"


def cpu_snapshot(procs: list[Proc]) -> dict[str, float]:
    snap = {p.name: p.cpu_seconds() for p in procs}
    own = psutil.Process().cpu_times()
    snap[LOAD_GENERATOR] = own.user + own.system
    return snap


def _served(cpu: dict[str, float]) -> float:
    """CPU of the processes that serve the tasks (the load generator left out)."""
    return sum(v for name, v in cpu.items() if name != LOAD_GENERATOR)


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


def agg(results: list[LoadResult]) -> dict[str, float]:
    """Median over runs of throughput and percentiles; min/max of throughput for the spread."""
    thr = [r.throughput for r in results]
    return {
        "thr": median(thr),
        "thr_min": min(thr),
        "thr_max": max(thr),
        "p50": median([r.p(50) for r in results]),
        "p50_min": min(r.p(50) for r in results),
        "p50_max": max(r.p(50) for r in results),
        "p95": median([r.p(95) for r in results]),
        "p99": median([r.p(99) for r in results]),
        "errors": sum(r.errors for r in results),
    }


async def throughput_section(report: Report, cfg: Config, stack: Stack, s1_worker: Proc) -> None:
    procs = [stack.procs["temporal"], s1_worker, stack.procs["api"], stack.procs["worker"], stack.procs["demo-agent"]]
    report.add(
        "## Memory at rest (RSS, MB)",
        "",
        "Measured after startup and before any load; the temporal figure is the dev server (Go) process.",
        "",
    )
    await asyncio.sleep(3)
    rest = {p.name: p.rss_mb() for p in procs}
    client = await Client.connect(stack.temporal_address)
    db = Database(stack.database_url)
    s1: dict[int, list[LoadResult]] = {c: [] for c in cfg.levels}
    s2: dict[int, list[LoadResult]] = {c: [] for c in cfg.levels}
    last: dict[tuple[str, int], LevelResult] = {}
    cpu_s1: dict[str, float] = {}
    cpu_s2: dict[str, float] = {}
    tasks_s1 = tasks_s2 = 0
    async with LoadClient(stack.api_url, stack.admin_key) as http:
        with MemorySampler(procs) as sampler:
            say("warm-up")
            await run_s1(client, 8, cfg.warmup)
            await run_s2(http, client, db, 8, cfg.warmup)
            for run in range(cfg.runs):
                for concurrency in cfg.levels:
                    total = cfg.totals[concurrency]
                    before = cpu_snapshot(procs)
                    result = await run_s1(client, concurrency, total)
                    for k, v in cpu_delta(before, cpu_snapshot(procs)).items():
                        cpu_s1[k] = cpu_s1.get(k, 0.0) + v
                    tasks_s1 += len(result.load.latencies_ms)
                    s1[concurrency].append(result.load)
                    last[("s1", concurrency)] = result
                    before = cpu_snapshot(procs)
                    result2 = await run_s2(http, client, db, concurrency, total)
                    for k, v in cpu_delta(before, cpu_snapshot(procs)).items():
                        cpu_s2[k] = cpu_s2.get(k, 0.0) + v
                    tasks_s2 += len(result2.load.latencies_ms)
                    s2[concurrency].append(result2.load)
                    last[("s2", concurrency)] = result2
                    say(
                        f"run {run + 1}/{cfg.runs} c={concurrency}: S1 {result.load.throughput:.1f}/s "
                        f"p50 {result.load.p(50):.1f} ms | S2 {result2.load.throughput:.1f}/s "
                        f"p50 {result2.load.p(50):.1f} ms (errors {result.load.errors}/{result2.load.errors})"
                        + (
                            f" {result.load.error_samples[:1]} {result2.load.error_samples[:1]}"
                            if result.load.errors or result2.load.errors
                            else ""
                        )
                    )
            peak = dict(sampler.peak)

            profiles: list[tuple[str, str | None, Path]] = []
            if "profile" not in cfg.skip:
                say("profiling API and worker with py-spy under S2 load (c=64)")
                rate = max(5.0, agg(s2[cfg.levels[-1]])["thr"])
                load = asyncio.create_task(run_s2(http, client, db, 64, int(rate * (cfg.profile_seconds + 2))))
                await asyncio.sleep(1)
                outs = {name: stack.workdir / f"{name}.folded" for name in ("api", "worker")}
                errors = await asyncio.gather(
                    *(profile.record(stack.procs[n].pid, cfg.profile_seconds, out) for n, out in outs.items())
                )
                await load
                profiles = [(n, e, outs[n]) for n, e in zip(outs, errors, strict=True)]

    report.table(
        ["process", "RSS at rest", "peak RSS under S1+S2 load"],
        [[name, f"{rest[name]:.0f}", f"{peak.get(name, 0):.0f}"] for name in rest],
    )

    report.add(
        "## S1 (bare Temporal) vs S2 (AINS full path)",
        "",
        "Closed loop: *c* concurrent users each submit a task and wait for it to finish, then submit the next. "
        "S1 is `client.execute_workflow` of a workflow with one no-op regular activity (own worker process, "
        "default SDK settings); latency ends when the client has the result. S2 is `POST /v1/tasks` (type "
        "`echo`) to the real API on uvicorn, routing, the HTTP call to the demo agent's `/run`, trust update and "
        "read model; latency ends at the task's `completed_at` in the registry DB (what `GET /v1/tasks/{id}` "
        "serves); the client waits for the workflow result with the same long poll as S1. Same dev server, same run, levels interleaved "
        f"(S1 then S2 at each level). Warm-up {cfg.warmup} tasks each at c=8 (not counted); "
        f"{cfg.runs} run(s) per level; tasks per level: "
        + ", ".join(f"c={c}: {cfg.totals[c]}" for c in cfg.levels)
        + ". Figures are medians over runs; throughput spread is min-max over runs.",
        "",
    )
    rows = []
    verdicts = []
    for c in cfg.levels:
        a, b = agg(s1[c]), agg(s2[c])
        ratio = b["thr"] / a["thr"] if a["thr"] else float("nan")
        dp50 = b["p50"] - a["p50"]
        met = ratio >= 0.8 and (c != 1 or dp50 <= 15)
        verdicts.append((c, ratio, dp50, met))
        rows.append(
            [
                str(c),
                f"{a['thr']:.1f} ({a['thr_min']:.1f}-{a['thr_max']:.1f})",
                f"{b['thr']:.1f} ({b['thr_min']:.1f}-{b['thr_max']:.1f})",
                f"{ratio:.2f}",
                f"{fmt(a['p50'])} / {fmt(a['p95'])} / {fmt(a['p99'])}",
                f"{fmt(b['p50'])} / {fmt(b['p95'])} / {fmt(b['p99'])}",
                f"{dp50:+.1f}",
                f"{int(a['errors'])}/{int(b['errors'])}",
                "yes" if met else "**no**",
            ]
        )
    report.table(
        [
            "c",
            "S1 tasks/s",
            "S2 tasks/s",
            "S2/S1",
            "S1 p50/p95/p99 ms",
            "S2 p50/p95/p99 ms",
            "Δp50 ms",
            "errors S1/S2",
            "goal met",
        ],
        rows,
    )
    for c in cfg.levels:
        samples = [e for r in s1[c] + s2[c] for e in r.error_samples]
        if samples:
            report.add(f"- errors at c={c} (first of each run): " + "; ".join(f"`{e}`" for e in samples[:3]))
    report.add("")
    met_levels = [str(c) for c, _, _, met in verdicts if met]
    report.add(
        "**Goal** (S2 throughput ≥ 0.8 x S1 at every level, and S2 p50 ≤ S1 p50 + 15 ms at c=1): "
        + (
            "met at every level."
            if len(met_levels) == len(verdicts)
            else f"met at c = {', '.join(met_levels) or 'none'}; not met at c = "
            + ", ".join(str(c) for c, _, _, met in verdicts if not met)
            + "."
        ),
        "",
    )

    # --- per-stage breakdown ---
    picks = [c for c in (1, 16) if c in cfg.levels]
    report.add(
        "### Where the time goes (per-stage medians, ms)",
        "",
        "From the Temporal workflow history event times of up to 40 runs of the last run at each level shown "
        "(the client's submit time is its wall clock; all processes share one clock).",
        "",
    )
    header = ["stage"]
    columns: list[dict[str, float]] = []
    for c in picks:
        for kind in ("s1", "s2"):
            header.append(f"{kind.upper()} c={c}")
            columns.append(await breakdown(client, last[(kind, c)].samples))
    rows = [[f"{name}: {desc}"] + [fmt(col.get(name, float("nan"))) for col in columns] for name, desc in STAGES]
    report.table(header, rows)
    for c in picks:
        extra = await db_breakdown(db, last[("s2", c)].samples)
        if extra:
            report.add(
                f"- S2 c={c}, from the read model: submit → agent chosen (task `created_at` → attempt "
                f"`started_at`) {fmt(extra['created_to_routed'])} ms; the HTTP call to the agent itself "
                f"(`task_attempts.duration_ms`) {fmt(extra['agent_http'])} ms."
            )
    report.add("")

    # --- CPU ---
    report.add(
        "## Where the CPU went",
        "",
        "CPU seconds (user + system, including child processes) per process during the measured sweeps, "
        "divided by the tasks completed; the load generator runs in the bench process itself.",
        "",
    )
    names = sorted(set(cpu_s1) | set(cpu_s2))
    report.table(
        ["process", "S1 CPU ms/task", "S2 CPU ms/task"],
        [
            [
                n,
                fmt(cpu_s1.get(n, 0) * 1000 / max(1, tasks_s1)),
                fmt(cpu_s2.get(n, 0) * 1000 / max(1, tasks_s2)),
            ]
            for n in names
        ]
        + [
            [
                "**total**",
                fmt(sum(cpu_s1.values()) * 1000 / max(1, tasks_s1)),
                fmt(sum(cpu_s2.values()) * 1000 / max(1, tasks_s2)),
            ],
            [
                "total without the load generator",
                fmt(_served(cpu_s1) * 1000 / max(1, tasks_s1)),
                fmt(_served(cpu_s2) * 1000 / max(1, tasks_s2)),
            ],
        ],
    )
    total_ratio = (sum(cpu_s2.values()) / max(1, tasks_s2)) / max(1e-9, sum(cpu_s1.values()) / max(1, tasks_s1))
    own_ms = (cpu_s2.get("worker", 0.0) + cpu_s2.get("api", 0.0)) * 1000 / max(1, tasks_s2)
    slow = stack.slow_workflow_tasks("worker")
    report.add(
        f"**Goals**: CPU per AINS task at most 1.25 x S1's, all processes: {total_ratio:.2f} x "
        f"({'met' if total_ratio <= 1.25 else '**not met**'}); AINS's own processes (worker + API) at most 35 ms "
        f"per task: {own_ms:.1f} ms ({'met' if own_ms <= 35 else '**not met**'}); 'workflow task duration "
        f"exceeded' warnings in the worker's log so far: {slow} ({'met' if slow == 0 else '**not met**'}).",
        "",
    )
    for name, error, out in profiles:
        if error:
            report.add(f"- py-spy on the {name}: {error}", "")
            continue
        total, own, packages = profile.top_functions(out)
        report.add(
            f"### py-spy: {name} process under S2 load at c=64 ({cfg.profile_seconds} s, 100 Hz, --gil: "
            f"{total} samples running Python)",
            "",
        )
        report.table(
            ["share of busy samples on the stack", "package"],
            [[f"{share * 100:.0f}%", f"`{pkg}`"] for pkg, share in packages],
        )
        report.table(["self time", "function"], [[f"{share * 100:.1f}%", f"`{fn}`"] for fn, share in own[:10]])
    await db.dispose()


async def api_section(report: Report, cfg: Config, stack: Stack) -> None:
    report.add(
        "## API latency with 10,000 agents and 100,000 tasks",
        "",
        f"A fresh registry DB is filled with {cfg.agents:,} agents (2 capabilities each) and {cfg.tasks:,} "
        "finished tasks by bulk insert (SQLAlchemy core), then a fresh API process (uvicorn, one process, as "
        "`ains api` runs it) serves it; POST /v1/tasks starts real workflows on the same dev server (in a "
        "namespace without workers, so they stay queued). Closed loop at each concurrency; latency is the "
        f"client's round trip. {cfg.api_requests} requests per level (batch: a tenth), after a warm-up; "
        f"{cfg.api_runs} run(s); medians over runs; p95 spread is min-max over runs. Goals are the p95 "
        "targets of issue #8 (five times the seed's); at c=8 POST /v1/tasks and GET /v1/tasks/{id} have issue #14's own goal of 50 ms.",
        "",
    )
    say("API bench: the baseline, Temporal's own start")
    client = await Client.connect(stack.temporal_address, namespace=API_NAMESPACE)
    bare, server_ms = await api_latency.measure_bare_starts(
        client, stack.procs["temporal"], cfg.api_levels, cfg.api_requests, cfg.api_runs
    )
    report.add(
        "### Baseline: Temporal's StartWorkflowExecution alone",
        "",
        "What each POST /v1/tasks costs Temporal after its row is committed (the API starts the run in the "
        "background, after answering: api/task_starter.py): the SDK client in the bench process starting a "
        "workflow nobody polls on the same dev server, closed loop, same levels and runs. The dev server spends "
        f"**{server_ms:.1f} ms of CPU per start**; on these 2 cores that, the API's own work and the load "
        "generator's set the ceiling of POSTs per second, and at c=8 the mean latency is 8 / that rate.",
        "",
    )
    report.table(
        ["c", "p50 ms", "p95 ms (spread)", "p99 ms", "starts/s"],
        [
            [
                str(c),
                fmt(median([x.p(50) for x in runs])),
                f"{fmt(median([x.p(95) for x in runs]))} ({fmt(min(x.p(95) for x in runs))}-"
                f"{fmt(max(x.p(95) for x in runs))})",
                fmt(median([x.p(99) for x in runs])),
                fmt(median([x.throughput for x in runs]), 0),
            ]
            for c, runs in bare.items()
        ],
    )
    backends: list[tuple[str, str, str | None]] = []
    sqlite_url = f"sqlite+aiosqlite:///{stack.workdir / 'api-bench.db'}"
    backends.append(("SQLite", sqlite_url, None))
    admin_pg = os.environ.get("AINS_BENCH_DATABASE_URL") or LOCAL_POSTGRES
    if "postgres" not in cfg.skip and await postgres_reachable(admin_pg):
        backends.append(("Postgres", "", admin_pg))
    else:
        report.add(f"- Postgres: not reachable at {admin_pg.split('@')[-1]} (or skipped); only SQLite measured.")
    for label, sqlite_url, admin in backends:
        async with scratch_postgres(admin, "ains_bench") if admin is not None else nullcontext(sqlite_url) as url:
            say(f"API bench on {label}: populating")
            t0 = time.monotonic()
            await stack.bootstrap(url, register_demo=False)
            ids = await api_latency.populate(url, cfg.agents, cfg.tasks)
            fill = time.monotonic() - t0
            proc = await stack.start_api(f"api-{label.lower()}", API_NAMESPACE)
            await wait_until("API ready", lambda: http_ok(f"{stack.api_url}/ready"), proc)
            rest = proc.rss_mb()
            say(f"API bench on {label}: measuring")
            with MemorySampler([proc]) as sampler:
                async with LoadClient(stack.api_url, stack.admin_key) as http:
                    results = await api_latency.measure_endpoints(
                        http, ids, cfg.api_levels, cfg.api_requests, cfg.api_runs, 30
                    )
            proc.stop()
        report.add(
            f"### {label} (filled in {fill:.0f} s; API RSS {rest:.0f} MB at rest, "
            f"{sampler.peak.get(proc.name, 0):.0f} MB peak under load)",
            "",
        )
        rows = []
        for r in results:
            if r.note:
                rows.append([r.name, "-", "-", "-", "-", f"{r.goal_p95_ms:g}", r.note])
                continue
            for c in cfg.api_levels:
                runs = [run[c] for run in r.runs]
                p95s = [x.p(95) for x in runs]
                p95 = median(p95s)
                errors = sum(x.errors for x in runs)
                verdict = "yes" if p95 <= r.goal(c) else "**no**"
                rows.append(
                    [
                        r.name,
                        str(c),
                        fmt(median([x.p(50) for x in runs])),
                        f"{fmt(p95)} ({fmt(min(p95s))}-{fmt(max(p95s))})",
                        fmt(median([x.p(99) for x in runs])),
                        f"{r.goal(c):g}",
                        verdict + (f"; {errors} errors: {runs[0].error_samples[:1]}" if errors else ""),
                    ]
                )
        report.table(["endpoint", "c", "p50 ms", "p95 ms (spread)", "p99 ms", "goal p95 ms", "p95 goal met"], rows)


async def main(cfg: Config, out: Path, keep: bool) -> int:
    report = Report("AINS benchmark report", f"python -m bench{' --quick' if cfg.quick else ''}")
    versions_section(report, cfg.quick)
    workdir = Path(tempfile.mkdtemp(prefix="ains-bench-"))
    ok = False
    stack = Stack(workdir)
    try:
        say(f"starting Temporal dev server, demo agent, API, workers (logs in {workdir / 'logs'})")
        await stack.start_temporal(["default", API_NAMESPACE])
        await stack.start_demo_agent()
        await stack.bootstrap(f"sqlite+aiosqlite:///{workdir / 'ains.db'}")
        stack.start_worker()
        await stack.start_api()
        s1_worker = Proc(
            "s1-worker",
            [sys.executable, "-m", "bench.s1_worker", stack.temporal_address],
            dict(os.environ),
            stack.logs / "s1-worker.log",
        ).start()
        stack.procs["s1-worker"] = s1_worker
        await wait_until("API ready", lambda: http_ok(f"{stack.api_url}/ready"), stack.procs["api"])
        if "s" not in cfg.skip:
            await throughput_section(report, cfg, stack, s1_worker)
        for name in ("s1-worker", "api", "worker", "demo-agent"):
            stack.procs[name].stop()
        if "api" not in cfg.skip:
            await api_section(report, cfg, stack)
        ok = True
    finally:
        stack.stop_all()
        if ok and not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"kept {workdir} (logs in {workdir / 'logs'})")
    report.add(
        "## Not covered",
        "",
        "- S1 on a Postgres-backed Temporal: only the embedded dev server (SQLite) is measured here.",
        "- Webhook delivery: being built concurrently; no webhook benchmark or fault test yet.",
        "",
    )
    await asyncio.to_thread(report.write, out)
    return 0


def cli() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer tasks and levels, one run")
    parser.add_argument(
        "--skip", action="append", choices=["s", "api", "postgres", "profile"], help="leave out a part (repeatable)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the working directory and logs")
    parser.add_argument("--out", type=Path, default=RESULTS / "REPORT.md")
    args = parser.parse_args()
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    return asyncio.run(main(make_config(args), args.out, args.keep))


if __name__ == "__main__":
    sys.exit(cli())
