"""The ``ains`` command line: operator verbs (up, api, worker, migrate, agent demo, keys create) and the client
commands of ``sdk.cli`` (task, batch, chain, plan, agents, trust, schedules, webhooks)."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from ains.core.platform.settings import get_settings
from ains.models.contract import ALL_QUEUES
from ains.sdk.cli import add_client_commands, connection_callback

app = typer.Typer(
    name="ains",
    help="AINS: durable task orchestration for AI agents",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.callback()(connection_callback)
agent_app = typer.Typer(help="agent utilities", no_args_is_help=True)
keys_app = typer.Typer(help="API key administration (on the registry database directly)", no_args_is_help=True)
app.add_typer(agent_app, name="agent")
app.add_typer(keys_app, name="keys")
add_client_commands(app)


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """``asyncio.run`` on uvloop where it is installed: the worker spends much of its Python time in the event
    loop (the SDK bridge's callbacks, sockets), and uvloop's costs less CPU per task."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def _setup_logging() -> None:
    from ains.core.platform.logging import configure_logging

    configure_logging(get_settings())


async def _wait_for_signal() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@app.command("up")
def cmd_up(
    no_demo: Annotated[bool, typer.Option("--no-demo", help="do not start and register the demo agent")] = False,
) -> None:
    """Start the whole platform on embedded defaults (Ctrl-C stops it)."""
    from ains.workers.devstack import run_devstack

    _setup_logging()
    raise typer.Exit(asyncio.run(run_devstack(get_settings(), with_demo_agent=not no_demo)))


@app.command("api")
def cmd_api() -> None:
    """Run the REST API server."""
    import uvicorn

    from ains.api.app import create_app

    _setup_logging()
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        timeout_keep_alive=settings.api_keepalive_seconds,
        log_level="warning",
        log_config=None,
    )


@app.command("worker")
def cmd_worker(
    queue: Annotated[
        list[str] | None, typer.Option(help=f"queue to serve: {', '.join(ALL_QUEUES)} or all (repeatable)")
    ] = None,
) -> None:
    """Run Temporal workers."""
    from ains.workers.worker import resolve_queues, run_workers

    _setup_logging()
    settings = get_settings()
    try:
        queues = resolve_queues(queue or ["all"])
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None

    async def main() -> None:
        from ains.core.platform.metrics import free_local_port
        from ains.core.platform.temporal import prometheus_runtime

        stop = await _wait_for_signal()
        runtime = sdk_url = None
        if settings.worker_metrics_port:
            # The SDK exports on an internal port; AINS_WORKER_METRICS_PORT serves its metrics and ours together.
            sdk_port = free_local_port()
            runtime = prometheus_runtime(sdk_port, host="127.0.0.1")
            sdk_url = f"http://127.0.0.1:{sdk_port}/metrics"
        await run_workers(settings, queues, stop, runtime, sdk_url)

    run_event_loop(main())


@app.command("migrate")
def cmd_migrate() -> None:
    """Apply database migrations."""
    from ains.core.platform.migrate import upgrade

    _setup_logging()
    settings = get_settings()
    asyncio.run(upgrade(settings.effective_database_url))
    print(f"registry database is at the latest schema ({settings.effective_database_url.split('@')[-1]})")


@agent_app.command("demo")
def cmd_agent_demo(
    port: Annotated[int | None, typer.Option(help="default AINS_DEMO_AGENT_PORT")] = None,
    register: Annotated[
        str | None, typer.Option(metavar="URL", help="register (or refresh) the demo agent at this endpoint URL first")
    ] = None,
) -> None:
    """Run the demo HTTP agent."""
    import uvicorn

    from ains.workers.demo_agent import create_demo_agent

    _setup_logging()
    settings = get_settings()
    if register:
        from ains.workers.devstack import register_demo_agent

        asyncio.run(register_demo_agent(settings, register))
        print(f"registered demo-agent at {register}")
    demo = create_demo_agent(settings.agent_signing_secret)
    uvicorn.run(demo, host=settings.demo_agent_host, port=port or settings.demo_agent_port, log_level="warning")


@keys_app.command("create")
def cmd_keys_create(
    client: Annotated[str, typer.Option(help="client id that owns the key")],
    name: Annotated[str, typer.Option()] = "cli",
    scope: Annotated[
        list[str] | None, typer.Option(help="scope (repeatable); default: tasks:read/write, agents:read")
    ] = None,
    expires_in_days: Annotated[int | None, typer.Option()] = None,
    rate_limit: Annotated[int | None, typer.Option(help="requests per minute")] = None,
) -> None:
    """Create an API key (printed once)."""
    from ains.core.access.keys import create_key
    from ains.core.platform.db import Database
    from ains.models.keys import ApiKeyCreate, Scope

    _setup_logging()
    settings = get_settings()
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    try:
        spec = ApiKeyCreate(
            client_id=client,
            name=name,
            scopes=[Scope(s) for s in scope]
            if scope
            else ApiKeyCreate.model_fields["scopes"].get_default(call_default_factory=True),
            expires_at=expires,
            rate_limit_per_minute=rate_limit,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None

    async def main() -> None:
        db = Database(settings.effective_database_url)
        try:
            async with db.transaction() as session:
                created = await create_key(session, spec)
        finally:
            await db.dispose()
        print(f"client:  {created.client_id}\nscopes:  {', '.join(s.value for s in created.scopes)}")
        print(f"key id:  {created.id}\nkey:     {created.key}\n(shown once; only its SHA-256 hash is stored)")

    asyncio.run(main())


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (usage errors 2, see ``sdk.cli.common`` for the rest)."""
    try:
        app(args=argv, prog_name="ains")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
