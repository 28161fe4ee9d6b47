"""Registry reads under concurrent load: GET /v1/agents and GET /v1/trust/leaderboard with 10,000 agents.

For each backend (a SQLite file, and a fresh Postgres database created and dropped here) the registry is
filled by ``bench.api_latency.populate`` (10,000 agents with 2 capabilities each, 100,000 finished tasks),
then the real API serves it: ``ains api`` (uvicorn, one process), and optionally uvicorn with several
worker processes on the same port (like that many API replicas on one machine). A closed loop of *c*
concurrent users (httpx, keep-alive) in this process measures each endpoint's round trip.

    .venv/bin/python -m bench.api_read_latency [--quick] [--runs 3] [--levels 1,4,8] [--processes 1,2]
                                               [--skip postgres] [--keep]

Writes bench/results/API_READ.md. Goals (issue #3): p95 under 10 ms for GET /v1/agents (default page of
100 agents) and under 20 ms for GET /v1/trust/leaderboard (top 20).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import api_latency
from bench.harness import Proc, Stack, free_port, http_ok, say_to, wait_until
from bench.stats import LoadResult, closed_loop, fmt, median

RESULTS = Path(__file__).parent / "results" / "API_READ.md"
LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
say = say_to("api-read")


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str
    goal_p95_ms: float


ENDPOINTS = [
    Endpoint("GET /v1/agents", "/v1/agents", 10),
    Endpoint("GET /v1/trust/leaderboard", "/v1/trust/leaderboard", 20),
]


@dataclass
class Measured:
    """One (backend, API processes, endpoint, concurrency) cell over every run."""

    runs: list[LoadResult] = field(default_factory=list)
    server_cpu_ms: list[float] = field(default_factory=list)  # API CPU time per request, per run
    client_cpu_ms: list[float] = field(default_factory=list)  # load generator CPU time per request, per run


def create_logged_app() -> Any:
    """The app as ``ains api`` serves it (same logging setup), for uvicorn's multi-process mode."""
    from api.app import create_app
    from workers.cli import _setup_logging

    _setup_logging()
    return create_app()


def serve(processes: int, port: int) -> None:
    """``--serve``: uvicorn with ``processes`` worker processes on one port (a child of the bench)."""
    import uvicorn

    uvicorn.run(
        "bench.api_read_latency:create_logged_app",
        factory=True,
        workers=processes,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        log_config=None,
    )


async def start_api(stack: Stack, processes: int, label: str) -> Proc:
    name = f"api-{label}-{processes}p"
    extra = {"AINS_TEMPORAL_ADDRESS": "127.0.0.1:1"}  # reads never touch Temporal
    if processes == 1:
        return await stack.start_api(name, **extra)
    port = free_port()
    env = stack.ains_env(AINS_API_PORT=str(port), **extra)
    args = [sys.executable, "-m", "bench.api_read_latency", "--serve", str(processes), "--port", str(port)]
    proc = Proc(name, args, env, stack.logs / f"{name}.log").start()
    stack.procs[name] = proc
    stack.api_url = f"http://127.0.0.1:{port}"
    await wait_until("API", lambda: http_ok(f"{stack.api_url}/health"), proc)
    return proc


async def measure(
    http: httpx.AsyncClient, key: str, proc: Proc, levels: list[int], requests: int, runs: int, warmup: int
) -> dict[str, dict[int, Measured]]:
    headers = {"Authorization": f"Bearer {key}"}
    me = psutil.Process()
    out: dict[str, dict[int, Measured]] = {e.name: {c: Measured() for c in levels} for e in ENDPOINTS}

    def caller(path: str) -> Callable[[int], Awaitable[float]]:
        async def one(_: int) -> float:
            t0 = time.perf_counter()
            response = await http.get(path, headers=headers)
            elapsed = (time.perf_counter() - t0) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {response.text[:150]}")
            return elapsed

        return one

    for endpoint in ENDPOINTS:
        await closed_loop(4, warmup, caller(endpoint.path))
    for _ in range(runs):
        for endpoint in ENDPOINTS:  # interleaved, so drift on the shared machine hits both alike
            one = caller(endpoint.path)
            for c in levels:
                server0, client0 = proc.cpu_seconds(), sum(me.cpu_times()[:2])
                result = await closed_loop(c, max(c, requests), one)
                server1, client1 = proc.cpu_seconds(), sum(me.cpu_times()[:2])
                done = max(1, len(result.latencies_ms) + result.errors)
                cell = out[endpoint.name][c]
                cell.runs.append(result)
                cell.server_cpu_ms.append((server1 - server0) / done * 1000)
                cell.client_cpu_ms.append((client1 - client0) / done * 1000)
    return out


@dataclass
class BackendResult:
    label: str
    fill_seconds: float
    by_processes: dict[int, dict[str, dict[int, Measured]]] = field(default_factory=dict)
    note: str = ""


async def run_backend(
    label: str, url: str, workdir: Path, args: argparse.Namespace, levels: list[int]
) -> BackendResult:
    stack = Stack(workdir)
    try:
        say(f"{label}: migrating and filling {args.agents:,} agents and {args.tasks:,} tasks")
        t0 = time.monotonic()
        await stack.bootstrap(url, register_demo=False)
        await api_latency.populate(url, args.agents, args.tasks)
        result = BackendResult(label, time.monotonic() - t0)
        for processes in args.processes:
            proc = await start_api(stack, processes, label.lower())
            say(f"{label}: measuring with {processes} API process(es)")
            async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
                result.by_processes[processes] = await measure(
                    http, stack.admin_key, proc, levels, args.requests, args.runs, args.warmup
                )
            proc.stop()
        return result
    finally:
        stack.stop_all()


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{psutil.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}; load average "
        f"(1, 5, 15 min) {load} when the report was written"
    )


def render(results: list[BackendResult], args: argparse.Namespace, levels: list[int], started: datetime) -> str:
    lines = [
        "# Registry reads under concurrent load",
        "",
        f"Generated by `python -m bench.api_read_latency{' --quick' if args.quick else ''}` on "
        f"{started:%Y-%m-%d %H:%M} UTC.",
        "",
        f"**Machine:** {_machine()}. The API, the database server (Postgres) and the load generator share "
        "these cores, and other work on the machine was not stopped: the load generator's own CPU per "
        "request is in the table, and at c=8 it competes with the API for the same 2 cores.",
        "",
        "**Method.** A fresh registry per backend, filled by `bench.api_latency.populate` with "
        f"{args.agents:,} agents (2 capabilities each) and {args.tasks:,} finished tasks; the admin key of "
        "`bench.harness.Stack.bootstrap` (a rate limit it never reaches; the limiter still runs on every "
        "request). The API is the real server: `ains api` (uvicorn, one process, exactly as production's "
        "image runs it per pod) and, for comparison, uvicorn with 2 worker processes on one port (what two "
        "API replicas on one 2-core machine would give). Closed loop: *c* users (one httpx client, "
        "keep-alive), each sending its next request when the previous answered; latency is the client's "
        f"round trip. {args.requests} requests per level after {args.warmup} warm-up requests per endpoint; "
        f"{args.runs} run(s), endpoints interleaved within each run; p50/p95/p99 are medians over runs "
        "(p95 spread: min-max over runs). `GET /v1/agents` is the default page (100 agents with "
        "capabilities and live load, ~66 KB), the leaderboard the default top 20. Server CPU is the API "
        "process tree's CPU time per request (including its DB driver thread; not Postgres itself).",
        "",
    ]
    for backend in results:
        lines += [f"## {backend.label} (filled in {backend.fill_seconds:.0f} s)", ""]
        if backend.note:
            lines += [backend.note, ""]
        for processes, by_endpoint in backend.by_processes.items():
            kind = "`ains api`, 1 process" if processes == 1 else f"uvicorn, {processes} worker processes"
            lines += [
                f"### {kind}",
                "",
                "| endpoint | c | p50 ms | p95 ms (spread) | p99 ms | req/s | server CPU ms/req | "
                "load generator CPU ms/req | goal p95 ms | goal met |",
                "|---|---|---|---|---|---|---|---|---|---|",
            ]
            for endpoint in ENDPOINTS:
                for c in levels:
                    cell = by_endpoint[endpoint.name][c]
                    p95s = [r.p(95) for r in cell.runs]
                    p95 = median(p95s)
                    errors = sum(r.errors for r in cell.runs)
                    met = "yes" if p95 < endpoint.goal_p95_ms else "**no**"
                    if errors:
                        met += f"; {errors} errors: {cell.runs[0].error_samples[:1]}"
                    lines.append(
                        f"| {endpoint.name} | {c} | {fmt(median([r.p(50) for r in cell.runs]))} | "
                        f"{fmt(p95)} ({fmt(min(p95s))}-{fmt(max(p95s))}) | "
                        f"{fmt(median([r.p(99) for r in cell.runs]))} | "
                        f"{median([r.throughput for r in cell.runs]):.0f} | {fmt(median(cell.server_cpu_ms), 2)} | "
                        f"{fmt(median(cell.client_cpu_ms), 2)} | {endpoint.goal_p95_ms:g} | {met} |"
                    )
            lines.append("")
    lines += [
        f"Reproduce: `.venv/bin/python -m bench.api_read_latency{' --quick' if args.quick else ''}` "
        "(Postgres: `AINS_BENCH_DATABASE_URL`, default the local server; `--skip postgres` to leave it out).",
        "",
    ]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    levels = args.levels
    started = datetime.now(UTC)
    tmp = Path(tempfile.mkdtemp(prefix="ains-api-read-"))
    results: list[BackendResult] = []
    try:
        if "sqlite" not in args.skip:
            url = f"sqlite+aiosqlite:///{tmp / 'registry.db'}"
            results.append(await run_backend("SQLite", url, tmp / "sqlite", args, levels))
        if "postgres" not in args.skip:
            admin = os.environ.get("AINS_BENCH_DATABASE_URL") or LOCAL_POSTGRES
            if await api_latency.postgres_reachable(admin):
                url = await api_latency.create_database(admin)
                try:
                    results.append(await run_backend("Postgres", url, tmp / "postgres", args, levels))
                finally:
                    await api_latency.drop_database(admin, url)
            else:
                say(f"Postgres not reachable at {admin.split('@')[-1]}; skipped")
        report = render(results, args, levels, started)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
        print(report)
        say(f"wrote {args.out}")
    finally:
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.api_read_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run of 200 requests per level")
    parser.add_argument("--runs", type=int, default=None, help="runs (default 3; --quick: 1)")
    parser.add_argument("--requests", type=int, default=None, help="requests per level (default 500; --quick: 200)")
    parser.add_argument("--warmup", type=int, default=100, help="warm-up requests per endpoint")
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4, 8])
    parser.add_argument(
        "--processes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2], help="API processes to try"
    )
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--skip", action="append", default=[], choices=["sqlite", "postgres"])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, SQLite file)")
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    args.requests = args.requests or (200 if args.quick else 500)
    return args


if __name__ == "__main__":
    options = parse_args()
    if options.serve:
        serve(options.serve, options.port)
        sys.exit(0)
    sys.exit(asyncio.run(main(options)))
