"""The ``ains`` command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import UTC, datetime, timedelta

from core.settings import ALL_QUEUES, get_settings


def _setup_logging() -> None:
    from core.logging import configure_logging

    configure_logging(get_settings())


async def _wait_for_signal() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def cmd_up(args: argparse.Namespace) -> int:
    from workers.devstack import run_devstack

    return asyncio.run(run_devstack(get_settings(), with_demo_agent=not args.no_demo))


def cmd_api(_: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app

    settings = get_settings()
    uvicorn.run(
        create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning", log_config=None
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from workers.worker import resolve_queues, run_workers

    settings = get_settings()
    try:
        queues = resolve_queues(args.queue)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    async def main() -> None:
        from core.metrics import free_local_port
        from core.temporal import prometheus_runtime

        stop = await _wait_for_signal()
        runtime = sdk_url = None
        if settings.worker_metrics_port:
            # The SDK exports on an internal port; AINS_WORKER_METRICS_PORT serves its metrics and ours together.
            sdk_port = free_local_port()
            runtime = prometheus_runtime(sdk_port, host="127.0.0.1")
            sdk_url = f"http://127.0.0.1:{sdk_port}/metrics"
        await run_workers(settings, queues, stop, runtime, sdk_url)

    asyncio.run(main())
    return 0


def cmd_migrate(_: argparse.Namespace) -> int:
    from core.migrate import upgrade

    settings = get_settings()
    asyncio.run(upgrade(settings.effective_database_url))
    print(f"registry database is at the latest schema ({settings.effective_database_url.split('@')[-1]})")
    return 0


def cmd_agent_demo(args: argparse.Namespace) -> int:
    import uvicorn

    from workers.demo_agent import create_demo_agent

    settings = get_settings()
    if args.register:
        from workers.devstack import register_demo_agent

        asyncio.run(register_demo_agent(settings, args.register))
        print(f"registered demo-agent at {args.register}")
    app = create_demo_agent(settings.agent_signing_secret)
    uvicorn.run(app, host=settings.demo_agent_host, port=args.port or settings.demo_agent_port, log_level="warning")
    return 0


def cmd_keys_create(args: argparse.Namespace) -> int:
    from core.db import Database
    from core.keys import create_key
    from models.keys import ApiKeyCreate, Scope

    settings = get_settings()
    expires = datetime.now(UTC) + timedelta(days=args.expires_in_days) if args.expires_in_days else None
    try:
        spec = ApiKeyCreate(
            client_id=args.client,
            name=args.name,
            scopes=[Scope(s) for s in args.scope]
            if args.scope
            else ApiKeyCreate.model_fields["scopes"].get_default(call_default_factory=True),
            expires_at=expires,
            rate_limit_per_minute=args.rate_limit,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

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
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ains", description="AINS: durable task orchestration for AI agents")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the whole platform on embedded defaults (Ctrl-C stops it)")
    up.add_argument("--no-demo", action="store_true", help="do not start and register the demo agent")
    up.set_defaults(func=cmd_up)

    sub.add_parser("api", help="run the REST API server").set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="run Temporal workers")
    worker.add_argument(
        "--queue", action="append", default=None, help=f"queue to serve: {', '.join(ALL_QUEUES)} or all (repeatable)"
    )
    worker.set_defaults(func=cmd_worker)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    agent = sub.add_parser("agent", help="agent utilities")
    agent_sub = agent.add_subparsers(dest="agent_command", required=True)
    demo = agent_sub.add_parser("demo", help="run the demo HTTP agent")
    demo.add_argument("--port", type=int, default=None)
    demo.add_argument(
        "--register",
        metavar="URL",
        default=None,
        help="register (or refresh) the demo agent at this endpoint URL first",
    )
    demo.set_defaults(func=cmd_agent_demo)

    keys = sub.add_parser("keys", help="API key administration")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create an API key (printed once)")
    create.add_argument("--client", required=True, help="client id that owns the key")
    create.add_argument("--name", default="cli")
    create.add_argument("--scope", action="append", help="scope (repeatable); default: tasks:read/write, agents:read")
    create.add_argument("--expires-in-days", type=int, default=None)
    create.add_argument("--rate-limit", type=int, default=None, help="requests per minute")
    create.set_defaults(func=cmd_keys_create)
    return parser


def main(argv: list[str] | None = None) -> int:
    _setup_logging()
    args = build_parser().parse_args(argv)
    if getattr(args, "queue", "unset") is None:
        args.queue = ["all"]
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
