"""Registry reads under concurrent load: GET /v1/agents and GET /v1/trust/leaderboard with 10,000 agents.

For each backend (a SQLite file, and a fresh Postgres database created and dropped here) the registry is
filled by ``bench.api_latency.populate`` (10,000 agents with 2 capabilities each, 100,000 finished tasks),
then the real API serves it: ``ains api`` (uvicorn, one process), and optionally uvicorn with several
worker processes on the same port (like that many API replicas on one machine). A closed loop of *c*
concurrent users (one keep-alive connection each) in this process measures each endpoint's round trip, both
as served (the API's registry read cache, ``AINS_REGISTRY_READ_CACHE_TTL_SECONDS``, default 1 s) and
uncached (``Cache-Control: no-cache`` on every request: a registry read each time).

    .venv/bin/python -m bench.api_read_latency [--quick] [--runs 3] [--requests 500] [--levels 1,4,8]
                                               [--processes 1] [--client raw|httpx] [--skip postgres] [--keep]

Writes bench/results/API_READ.md. Goals (issue #3): p95 under 10 ms for GET /v1/agents (default page of
100 agents) and under 20 ms for GET /v1/trust/leaderboard (top 20).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench import api_latency
from bench.harness import Proc, Stack, free_port, http_ok, say_to, wait_until
from bench.report import Report
from bench.stats import LoadResult, closed_loop, fmt, median
from tests.support.databases import postgres_reachable, scratch_postgres

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


MODES = {"cached": {}, "uncached": {"Cache-Control": "no-cache"}}


@dataclass
class Measured:
    """One (backend, API processes, endpoint, cache mode, concurrency) cell over every run."""

    runs: list[LoadResult] = field(default_factory=list)
    server_cpu_ms: list[float] = field(default_factory=list)  # API CPU time per request, per run
    client_cpu_ms: list[float] = field(default_factory=list)  # load generator CPU time per request, per run
    from_cache: int = 0  # answers carrying an Age header (served from the API's cache)
    answers: int = 0


class RawClient:
    """The load generator's HTTP/1.1 client: keep-alive connections, one per concurrent user, a request's bytes
    built once. About a tenth of httpx's CPU per request, which matters when it shares 2 cores with the API."""

    def __init__(self, url: str, size: int) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.host, self.port, self.size = host, int(port), size
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def __aenter__(self) -> RawClient:
        for _ in range(self.size):
            self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))
        return self

    async def __aexit__(self, *_: object) -> None:
        while not self.idle.empty():
            _reader, writer = self.idle.get_nowait()
            writer.close()

    def request(self, path: str, headers: dict[str, str]) -> bytes:
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def send(self, request: bytes) -> tuple[int, bool, bytes]:
        """Status, whether the answer came from the API's cache (an Age header), and the body."""
        reader, writer = await self.idle.get()
        try:
            writer.write(request)
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            start = head.index(b"\r\ncontent-length:") + 17
            body = await reader.readexactly(int(head[start : head.index(b"\r\n", start)]))
        except BaseException:
            writer.close()
            self.idle.put_nowait(await asyncio.open_connection(self.host, self.port))
            raise
        self.idle.put_nowait((reader, writer))
        return int(head[9:12]), b"\r\nage:" in head, body


def create_logged_app() -> Any:
    """The app as ``ains api`` serves it (same logging setup), for uvicorn's multi-process mode."""
    from ains.api.app import create_app
    from ains.workers.cli import _setup_logging

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


async def start_api(stack: Stack, processes: int, label: str, options: argparse.Namespace) -> Proc:
    name = f"api-{label}-{processes}p"
    extra = {
        "AINS_TEMPORAL_ADDRESS": "127.0.0.1:1",  # reads never touch Temporal
        "AINS_REGISTRY_READ_CACHE_TTL_SECONDS": str(options.cache_ttl),
    }
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
    api_url: str, key: str, proc: Proc, args: argparse.Namespace, levels: list[int]
) -> dict[str, dict[str, dict[int, Measured]]]:
    """endpoint name -> cache mode -> concurrency -> cell."""
    auth = {"Authorization": f"Bearer {key}"}
    me = psutil.Process()
    out = {e.name: {mode: {c: Measured() for c in levels} for mode in MODES} for e in ENDPOINTS}
    raw = RawClient(api_url, max(levels))
    http = httpx.AsyncClient(base_url=api_url, timeout=60, limits=httpx.Limits(max_connections=max(levels)))

    def caller(path: str, mode: str, cell: Measured | None) -> Callable[[int], Awaitable[float]]:
        headers = {**auth, **MODES[mode]}
        request = raw.request(path, headers)

        async def one(_: int) -> float:
            t0 = time.perf_counter()
            if args.client == "raw":
                status, cached, body = await raw.send(request)
            else:
                response = await http.get(path, headers=headers)
                status, cached, body = response.status_code, "age" in response.headers, response.content
            elapsed = (time.perf_counter() - t0) * 1000
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:150]!r}")
            if cell is not None:
                cell.answers += 1
                cell.from_cache += cached
            return elapsed

        return one

    async with raw, http:
        for endpoint in ENDPOINTS:
            for mode in MODES:
                await closed_loop(4, args.warmup, caller(endpoint.path, mode, None))
        for _ in range(args.runs):
            for endpoint in ENDPOINTS:  # interleaved, so drift on the shared machine hits every cell alike
                for mode in MODES:
                    for c in levels:
                        cell = out[endpoint.name][mode][c]
                        one = caller(endpoint.path, mode, cell)
                        server0, client0 = proc.cpu_seconds(), sum(me.cpu_times()[:2])
                        result = await closed_loop(c, max(c, args.requests), one)
                        server1, client1 = proc.cpu_seconds(), sum(me.cpu_times()[:2])
                        done = max(1, len(result.latencies_ms) + result.errors)
                        cell.runs.append(result)
                        cell.server_cpu_ms.append((server1 - server0) / done * 1000)
                        cell.client_cpu_ms.append((client1 - client0) / done * 1000)
    return out


@dataclass
class BackendResult:
    label: str
    fill_seconds: float
    by_processes: dict[int, dict[str, dict[str, dict[int, Measured]]]] = field(default_factory=dict)
    load_average: dict[int, tuple[float, float]] = field(default_factory=dict)  # 1-min, before and after
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
            proc = await start_api(stack, processes, label.lower(), args)
            say(f"{label}: measuring with {processes} API process(es), load average {os.getloadavg()[0]:.1f}")
            before = os.getloadavg()[0]
            result.by_processes[processes] = await measure(stack.api_url, stack.admin_key, proc, args, levels)
            result.load_average[processes] = (before, os.getloadavg()[0])
            proc.stop()
        return result
    finally:
        stack.stop_all()


def _command(args: argparse.Namespace) -> str:
    flags = " --quick" if args.quick else ""
    flags += f" --runs {args.runs} --requests {args.requests}" if not args.quick else ""
    if args.processes != [1]:
        flags += f" --processes {','.join(map(str, args.processes))}"
    if args.client != "raw":
        flags += f" --client {args.client}"
    return f"python -m bench.api_read_latency{flags}"


def render(results: list[BackendResult], args: argparse.Namespace, levels: list[int]) -> str:
    client = (
        "a minimal keep-alive HTTP/1.1 client (`RawClient`, request bytes built once)"
        if args.client == "raw"
        else "one httpx client (keep-alive)"
    )
    lines = [
        "The API, the database server (Postgres) and the load generator share these cores, and other work on the machine was not stopped (its load average before and after each "
        "measurement is under each table). The load generator's own CPU per request is in the tables: every "
        "millisecond of it is a millisecond the API cannot use, so at c=4 and c=8 the figures describe the "
        "API and its client together on 2 busy cores, not the API alone.",
        "",
        "**Method.** A fresh registry per backend, filled by `bench.api_latency.populate` with "
        f"{args.agents:,} agents (2 capabilities each) and {args.tasks:,} finished tasks; the admin key of "
        "`bench.harness.Stack.bootstrap` (a rate limit it never reaches; authentication and the limiter "
        "still run on every request). The API is the real server, `ains api` (uvicorn, one process, as "
        "production's image runs it per pod), with `AINS_REGISTRY_READ_CACHE_TTL_SECONDS="
        f"{args.cache_ttl:g}`. Each endpoint is measured *cached* (plain requests: the API answers from its "
        "per-process cache, reading the registry again once the entry is older than the TTL) and *uncached* "
        "(`Cache-Control: no-cache` on every request: a registry read and serialization each time, what "
        f"every request cost before the cache). Closed loop: *c* users over {client}, each sending its next "
        "request when the previous answered; latency is the client's round trip. "
        f"{args.requests} requests per cell after {args.warmup} warm-up requests per endpoint and mode; "
        f"{args.runs} run(s), endpoints and modes interleaved within each run; p50/p95/p99 are medians over "
        "runs (p95 spread: min-max over runs). *From cache* is the share of answers with an `Age` header. "
        "`GET /v1/agents` is the default page (100 agents with capabilities and live load, ~66 KB), the "
        "leaderboard the default top 20. Server CPU is the API process tree's CPU time per request "
        "(including its DB driver thread; not Postgres itself).",
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
                "| endpoint | mode | c | p50 ms | p95 ms (spread) | p99 ms | req/s | from cache | "
                "server CPU ms/req | load generator CPU ms/req | goal p95 ms | goal met |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for endpoint in ENDPOINTS:
                for mode in MODES:
                    for c in levels:
                        cell = by_endpoint[endpoint.name][mode][c]
                        p95s = [r.p(95) for r in cell.runs]
                        p95 = median(p95s)
                        errors = sum(r.errors for r in cell.runs)
                        met = "yes" if p95 < endpoint.goal_p95_ms else "**no**"
                        if errors:
                            met += f"; {errors} errors: {cell.runs[0].error_samples[:1]}"
                        hits = f"{100 * cell.from_cache / cell.answers:.0f}%" if cell.answers else "n/a"
                        lines.append(
                            f"| {endpoint.name} | {mode} | {c} | {fmt(median([r.p(50) for r in cell.runs]))} | "
                            f"{fmt(p95)} ({fmt(min(p95s))}-{fmt(max(p95s))}) | "
                            f"{fmt(median([r.p(99) for r in cell.runs]))} | "
                            f"{median([r.throughput for r in cell.runs]):.0f} | {hits} | "
                            f"{fmt(median(cell.server_cpu_ms), 2)} | {fmt(median(cell.client_cpu_ms), 2)} | "
                            f"{endpoint.goal_p95_ms:g} | {met} |"
                        )
            before, after = backend.load_average.get(processes, (float("nan"), float("nan")))
            lines += ["", f"Machine load average (1 min): {before:.1f} before, {after:.1f} after these cells.", ""]
    lines += [
        "Postgres: `AINS_BENCH_DATABASE_URL`, default the local server; `--skip postgres` to leave it out.",
        "",
    ]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    levels = args.levels
    report = Report("Registry reads under concurrent load", _command(args))
    tmp = Path(tempfile.mkdtemp(prefix="ains-api-read-"))
    results: list[BackendResult] = []
    try:
        if "sqlite" not in args.skip:
            url = f"sqlite+aiosqlite:///{tmp / 'registry.db'}"
            results.append(await run_backend("SQLite", url, tmp / "sqlite", args, levels))
        if "postgres" not in args.skip:
            admin = os.environ.get("AINS_BENCH_DATABASE_URL") or LOCAL_POSTGRES
            if await postgres_reachable(admin):
                async with scratch_postgres(admin, "ains_bench") as url:
                    results.append(await run_backend("Postgres", url, tmp / "postgres", args, levels))
            else:
                say(f"Postgres not reachable at {admin.split('@')[-1]}; skipped")
        report.add(render(results, args, levels))
        print(report.write(args.out))
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
        "--processes", type=lambda s: [int(x) for x in s.split(",")], default=[1], help="API processes to try"
    )
    parser.add_argument(
        "--client", choices=["raw", "httpx"], default="raw", help="the load generator's HTTP client (default raw)"
    )
    parser.add_argument(
        "--cache-ttl", type=float, default=1.0, help="AINS_REGISTRY_READ_CACHE_TTL_SECONDS of the API (default 1)"
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
