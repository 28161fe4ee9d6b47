"""`ains up`: the whole platform on one machine with embedded defaults.

Starts the Temporal dev server (SQLite file under the data dir, so runs survive restarts), applies
migrations, bootstraps an admin API key on first start, then runs the demo agent, the workers and the API
as child processes. Ctrl-C stops them in reverse order.

The demo agent, the workers and the API are supervised (workers.supervisor): one that exits is restarted with
backoff and the restart is logged; the stack stops only on Ctrl-C, when Temporal exits, or when a process
keeps crashing (its log's last lines are printed). Each child's pid is in ``<data dir>/run/<name>.pid``:
``kill $(cat .ains/run/worker.pid)`` restarts the workers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import httpx

from ains.core.access.keys import create_key, has_admin_key
from ains.core.agents.registry import upsert_agent
from ains.core.platform.db import Database
from ains.core.platform.migrate import upgrade
from ains.core.platform.settings import Settings
from ains.core.platform.temporal import connect
from ains.models.agents import AgentCreate, Capability
from ains.models.keys import ApiKeyCreate, Scope
from ains.workers.demo_agent import DEMO_AGENT_ID, DEMO_CAPABILITIES
from ains.workers.supervisor import Child, GaveUp, supervise
from ains.workers.temporal_dev import dev_server_args, find_binary

STARTUP_TIMEOUT_SECONDS = 90


def _say(message: str) -> None:
    print(f"[ains up] {message}", flush=True)


async def _wait_until(what: str, check: object, child: Child | None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if child is not None and not child.running():
            raise RuntimeError(f"{what} exited during startup; see {child.log_file}")
        try:
            await check()  # type: ignore[operator]
            return
        except Exception as exc:  # not up yet
            last_error = exc
            await asyncio.sleep(0.25)
    raise RuntimeError(f"{what} not ready after {STARTUP_TIMEOUT_SECONDS}s: {last_error}")


async def _http_ok(url: str) -> None:
    async with httpx.AsyncClient(timeout=2) as http:
        (await http.get(url)).raise_for_status()


def demo_agent_spec(endpoint_url: str) -> AgentCreate:
    return AgentCreate(
        id=DEMO_AGENT_ID,
        display_name="Demo agent",
        endpoint_url=endpoint_url,
        capabilities=[Capability(tag=t, version="1.0") for t in DEMO_CAPABILITIES],
        max_concurrency=50,
    )


async def register_demo_agent(settings: Settings, endpoint_url: str) -> None:
    db = Database(settings.effective_database_url)
    try:
        async with db.transaction() as session:
            await upsert_agent(session, demo_agent_spec(endpoint_url))
    finally:
        await db.dispose()


async def _bootstrap_registry(settings: Settings, demo_url: str | None) -> str | None:
    """Migrate, register the demo agent, and create the admin key on first start (returned once)."""
    await upgrade(settings.effective_database_url)
    if demo_url is not None:
        await register_demo_agent(settings, demo_url)
    db = Database(settings.effective_database_url)
    try:
        async with db.transaction() as session:
            if await has_admin_key(session):
                return None
            created = await create_key(
                session, ApiKeyCreate(client_id="admin", name="bootstrap admin", scopes=[Scope.ADMIN])
            )
            return created.key
    finally:
        await db.dispose()


async def run_devstack(settings: Settings, with_demo_agent: bool = True) -> int:
    started = time.monotonic()
    data_dir = settings.data_dir.resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AINS_DATA_DIR": str(data_dir)}
    ains = [sys.executable, "-m", "ains.workers.cli"]
    host, _, port = settings.temporal_address.rpartition(":")
    run = data_dir / "run"
    children: list[Child] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    try:
        _say(f"starting Temporal dev server (state in {data_dir / 'temporal.db'})")
        temporal_args = dev_server_args(
            data_dir / "temporal.db", host, int(port), settings.temporal_ui_port, settings.temporal_priority_levels
        )
        children.append(
            Child(
                "temporal",
                [find_binary("temporal"), "server", "start-dev", *temporal_args],
                logs / "temporal.log",
                env,
                run / "temporal.pid",
                restart=False,  # its state is the whole platform's; if it dies, the stack stops
            )
        )

        async def temporal_ready() -> None:
            await connect(settings)

        await _wait_until("Temporal", temporal_ready, children[-1])

        demo_url = None
        if with_demo_agent:
            _say(f"starting demo agent on 127.0.0.1:{settings.demo_agent_port}")
            children.append(
                Child("demo-agent", [*ains, "agent", "demo"], logs / "demo-agent.log", env, run / "demo-agent.pid")
            )
            await _wait_until(
                "demo agent", lambda: _http_ok(f"http://127.0.0.1:{settings.demo_agent_port}/health"), children[-1]
            )
            demo_url = f"http://127.0.0.1:{settings.demo_agent_port}/run"

        _say(f"migrating registry database ({settings.effective_database_url})")
        admin_key = await _bootstrap_registry(settings, demo_url)

        _say("starting workers (all task queues)")
        children.append(
            Child("worker", [*ains, "worker", "--queue", "all"], logs / "worker.log", env, run / "worker.pid")
        )
        _say(f"starting API on {settings.api_host}:{settings.api_port}")
        children.append(Child("api", [*ains, "api"], logs / "api.log", env, run / "api.pid"))
        await _wait_until("API", lambda: _http_ok(f"http://127.0.0.1:{settings.api_port}/ready"), children[-1])

        _print_banner(settings, admin_key, time.monotonic() - started)
        try:
            await supervise(children, stop, _say)
        except GaveUp:
            return 1
        return 0
    except (RuntimeError, FileNotFoundError) as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        _say("stopping…")
        for child in reversed(children):
            child.stop()
        _say("stopped")


def _print_banner(settings: Settings, admin_key: str | None, elapsed: float) -> None:
    api = settings.public_api_url
    lines = [
        "",
        f"AINS is up ({elapsed:.1f}s).",
        f"  Dashboard:    {api}/ui   (sign in with an API key)",
        f"  API docs:     {api}/docs",
        f"  Temporal UI:  {settings.temporal_ui_url}",
        f"  Metrics:      {api}/metrics",
        f"  Logs:         {settings.data_dir.resolve() / 'logs'}",
    ]
    if admin_key:
        lines += [
            "",
            "  Bootstrap admin API key (shown once; only its hash is stored):",
            f"    {admin_key}",
            "",
            "  Try it:",
            f"    export AINS_KEY={admin_key}",
            f'    curl -s -X POST {api}/v1/tasks -H "Authorization: Bearer $AINS_KEY" \\',
            '      -H \'Content-Type: application/json\' -d \'{"type": "summarize", "input": {"text": "AINS works. It is durable."}}\'',
        ]
    else:
        lines += ["", "  Admin key: created on first start (lost it? `ains keys create --client admin --scope admin`)."]
    lines += ["", "Press Ctrl-C to stop."]
    print("\n".join(lines), flush=True)
