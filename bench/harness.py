"""Processes for benchmarks and chaos runs: a Temporal dev server, the AINS API, workers and the demo agent.

Every piece is a real child process (so memory and CPU can be measured per process), on free ports, with
its state in a private working directory. Nothing here touches a developer's `.ains/` directory.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from ains.core.access.keys import create_key
from ains.core.agents.registry import upsert_agent
from ains.core.platform.db import Database
from ains.core.platform.migrate import upgrade
from ains.models.agents import AgentCreate, Capability
from ains.models.keys import ApiKeyCreate, Scope
from ains.models.search_attributes import ALL_KEYS
from ains.workers.child_processes import die_with_parent
from ains.workers.temporal_dev import dev_server_args, find_binary

ROOT = Path(__file__).absolute().parent.parent
SIGNING_SECRET = "bench-signing-secret"
BENCH_AGENT_ID = "bench-echo"
STARTUP_TIMEOUT = 90.0
# What the Temporal SDK logs (TMPRL1104) when a workflow task takes longer than 5 s.
SLOW_WORKFLOW_TASK = "Workflow task duration exceeded"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log_file: Path
    popen: subprocess.Popen[bytes] | None = None
    ps: psutil.Process | None = None

    def start(self) -> Proc:
        log = self.log_file.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        log.close()
        self.ps = psutil.Process(self.popen.pid)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def rss_mb(self) -> float:
        """Resident memory of the process and its children (the temporal CLI runs the server in-process)."""
        if self.ps is None or not self.running():
            return 0.0
        total = 0
        for p in [self.ps, *self.ps.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total / 1e6

    def cpu_seconds(self) -> float:
        if self.ps is None or not self.running():
            return 0.0
        total = 0.0
        for p in [self.ps, *self.ps.children(recursive=True)]:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    def kill(self) -> None:
        if self.running():
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 20) -> None:
        if self.running():
            assert self.popen is not None
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()


async def wait_until(what: str, check: object, proc: Proc | None = None, timeout: float = STARTUP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.running():
            raise RuntimeError(f"{what} exited during startup; see {proc.log_file}")
        try:
            await check()  # type: ignore[operator]
            return
        except Exception as exc:
            last = exc
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout}s: {last}")


async def http_ok(url: str) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        (await http.get(url)).raise_for_status()


@dataclass
class Stack:
    """A Temporal dev server plus, once started, AINS processes on one registry DB."""

    workdir: Path
    temporal_address: str = ""
    procs: dict[str, Proc] = field(default_factory=dict)
    database_url: str = ""
    api_url: str = ""
    demo_url: str = ""
    admin_key: str = ""

    @property
    def logs(self) -> Path:
        path = self.workdir / "logs"
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def start_temporal(self, namespaces: list[str]) -> None:
        from temporalio.client import Client

        port, ui_port = free_port(), free_port()
        self.temporal_address = f"127.0.0.1:{port}"
        args = dev_server_args(self.workdir / "temporal.db", "127.0.0.1", port, ui_port, 10)
        for ns in namespaces:
            args += ["--namespace", ns]
        proc = Proc(
            "temporal",
            [find_binary("temporal"), "server", "start-dev", *args],
            dict(os.environ),
            self.logs / "temporal.log",
        ).start()
        self.procs["temporal"] = proc

        async def ready() -> None:
            await Client.connect(self.temporal_address)

        await wait_until("Temporal", ready, proc)
        assert ALL_KEYS  # registered by dev_server_args on every namespace created at launch

    def ains_env(self, namespace: str = "default", **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "AINS_DATA_DIR": str(self.workdir),
            "AINS_DATABASE_URL": self.database_url,
            "AINS_TEMPORAL_ADDRESS": self.temporal_address,
            "AINS_TEMPORAL_NAMESPACE": namespace,
            "AINS_AGENT_SIGNING_SECRET": SIGNING_SECRET,
            "AINS_WORKER_METRICS_PORT": "0",
            "AINS_REDIS_URL": "",
        }
        env.update(extra)
        return env

    def _ains(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        proc = Proc(name, [sys.executable, "-m", "ains.workers.cli", *args], env, self.logs / f"{name}.log").start()
        self.procs[name] = proc
        return proc

    async def start_demo_agent(self) -> None:
        port = free_port()
        proc = self._ains("demo-agent", ["agent", "demo", "--port", str(port)], self.ains_env())
        self.demo_url = f"http://127.0.0.1:{port}"
        await wait_until("demo agent", lambda: http_ok(f"{self.demo_url}/health"), proc)

    async def bootstrap(self, database_url: str, register_demo: bool = True) -> None:
        """Migrate the registry, register the no-op agent, create an admin key without a practical rate limit."""
        self.database_url = database_url
        await upgrade(database_url)
        db = Database(database_url)
        try:
            async with db.transaction() as session:
                if register_demo:
                    await upsert_agent(
                        session,
                        AgentCreate(
                            id=BENCH_AGENT_ID,
                            display_name="bench no-op agent",
                            endpoint_url=f"{self.demo_url}/run",
                            capabilities=[Capability(tag="echo", version="1.0")],
                            max_concurrency=10_000,
                        ),
                    )
                created = await create_key(
                    session,
                    ApiKeyCreate(
                        client_id="bench", name="bench", scopes=[Scope.ADMIN], rate_limit_per_minute=1_000_000
                    ),
                )
            self.admin_key = created.key
        finally:
            await db.dispose()

    def start_worker(self, name: str = "worker", namespace: str = "default", **extra: str) -> Proc:
        return self._ains(name, ["worker", "--queue", "all"], self.ains_env(namespace, **extra))

    async def start_api(self, name: str = "api", namespace: str = "default", **extra: str) -> Proc:
        port = free_port()
        proc = self._ains(name, ["api"], self.ains_env(namespace, AINS_API_PORT=str(port), **extra))
        self.api_url = f"http://127.0.0.1:{port}"
        await wait_until("API", lambda: http_ok(f"{self.api_url}/health"), proc)
        return proc

    def stop_all(self) -> None:
        for name in reversed(list(self.procs)):
            self.procs[name].stop()

    def slow_workflow_tasks(self, name: str) -> int:
        """Warnings in process ``name``'s log that a workflow task ran past Temporal's 5 s deadline."""
        log = self.logs / f"{name}.log"
        if not log.exists():
            return 0
        with log.open(encoding="utf-8", errors="replace") as lines:
            return sum(1 for line in lines if SLOW_WORKFLOW_TASK in line)


def say_to(prefix: str) -> Callable[[str], None]:
    def say(message: str) -> None:
        print(f"[{prefix} {time.strftime('%H:%M:%S')}] {message}", flush=True)

    return say
