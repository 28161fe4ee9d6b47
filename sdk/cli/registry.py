"""``ains agents ...`` and ``ains trust ...``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ains.models.agents import AgentStatus, AgentView
from ains.models.trust import TrustTier
from ains.sdk.cli.common import EXIT_USAGE, Output, OutputOption, fail, fields, print_json, run, table
from ains.sdk.client import Client

agents_app = typer.Typer(help="The agent registry.", no_args_is_help=True)
trust_app = typer.Typer(help="Trust scores and their history.", no_args_is_help=True)

CapabilityOption = Annotated[
    list[str] | None, typer.Option("--capability", "-c", help="tag or tag:version, e.g. summarize:2.1 (repeatable)")
]


def _capabilities(values: list[str]) -> list[dict[str, str]]:
    parsed = []
    for value in values:
        tag, _, version = value.partition(":")
        if not tag:
            fail(f"--capability {value!r}: give tag or tag:version", EXIT_USAGE)
        parsed.append({"tag": tag, "version": version} if version else {"tag": tag})
    return parsed


def show_agent(agent: AgentView) -> None:
    fields(
        [
            ("id", agent.id),
            ("name", agent.display_name),
            ("kind", agent.kind),
            ("endpoint", agent.endpoint_url),
            ("status", agent.status.value),
            ("health error", agent.health_error),
            ("capabilities", ", ".join(f"{c.tag} {c.version}" for c in agent.capabilities)),
            ("trust", f"{agent.trust_score:.3f} ({agent.trust_tier.value})"),
            ("tasks", f"{agent.total_tasks} ({agent.success_rate:.0%} succeeded)"),
            ("running", f"{agent.running_tasks}/{agent.max_concurrency}"),
            ("avg response", f"{agent.avg_response_ms:.0f} ms" if agent.avg_response_ms is not None else None),
            ("last heartbeat", agent.last_heartbeat_at),
        ]
    )


@agents_app.command("ls")
def list_agents(
    ctx: typer.Context,
    tag: Annotated[list[str] | None, typer.Option(help="only agents offering every tag given (repeatable)")] = None,
    status: Annotated[AgentStatus | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    output: OutputOption = Output.TABLE,
) -> None:
    """Registered agents, by id."""

    def action(client: Client) -> None:
        agents: list[AgentView] = []
        for agent in client.agents.iter(tag=tag, status=status, limit=min(limit, 500)):
            agents.append(agent)
            if len(agents) >= limit:
                break
        if output == Output.JSON:
            print_json(agents)
            return
        rows = [
            [
                a.id,
                a.status.value,
                ", ".join(c.tag for c in a.capabilities),
                f"{a.trust_score:.3f}",
                a.trust_tier.value,
                f"{a.running_tasks}/{a.max_concurrency}",
            ]
            for a in agents
        ]
        table(None, ["id", "status", "capabilities", "trust", "tier", "running"], rows)

    run(ctx, action)


@agents_app.command("show")
def show(ctx: typer.Context, agent_id: str, output: OutputOption = Output.TABLE) -> None:
    """One agent with trust, counters and load."""

    def action(client: Client) -> None:
        agent = client.agents.get(agent_id)
        print_json(agent) if output == Output.JSON else show_agent(agent)

    run(ctx, action)


@agents_app.command("register")
def register(
    ctx: typer.Context,
    agent_id: Annotated[str, typer.Argument(metavar="ID")],
    endpoint: Annotated[str, typer.Option(help="URL AINS POSTs calls to")],
    capability: CapabilityOption = None,
    name: Annotated[str | None, typer.Option(help="display name (default: the id)")] = None,
    health_url: Annotated[str | None, typer.Option()] = None,
    max_concurrency: Annotated[int, typer.Option(min=1)] = 1,
    output: OutputOption = Output.TABLE,
) -> None:
    """Register an HTTP agent."""
    if not capability:
        fail("give at least one --capability", EXIT_USAGE)
    spec: dict[str, Any] = {
        "id": agent_id,
        "display_name": name or agent_id,
        "endpoint_url": endpoint,
        "capabilities": _capabilities(capability),
        "max_concurrency": max_concurrency,
    }
    if health_url:
        spec["health_url"] = health_url

    def action(client: Client) -> None:
        agent = client.agents.register(spec)
        print_json(agent) if output == Output.JSON else show_agent(agent)

    run(ctx, action)


@agents_app.command("update")
def update(
    ctx: typer.Context,
    agent_id: Annotated[str, typer.Argument(metavar="ID")],
    endpoint: Annotated[str | None, typer.Option()] = None,
    capability: CapabilityOption = None,
    name: Annotated[str | None, typer.Option()] = None,
    health_url: Annotated[str | None, typer.Option()] = None,
    max_concurrency: Annotated[int | None, typer.Option(min=1)] = None,
    status: Annotated[AgentStatus | None, typer.Option(help="unavailable takes it out of routing")] = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Change an agent: only the fields given."""
    change: dict[str, Any] = {
        k: v
        for k, v in {
            "endpoint_url": endpoint,
            "display_name": name,
            "health_url": health_url,
            "max_concurrency": max_concurrency,
            "status": status,
        }.items()
        if v is not None
    }
    if capability:
        change["capabilities"] = _capabilities(capability)
    if not change:
        fail("nothing to change: give at least one option", EXIT_USAGE)

    def action(client: Client) -> None:
        agent = client.agents.update(agent_id, change)
        print_json(agent) if output == Output.JSON else show_agent(agent)

    run(ctx, action)


@trust_app.command("leaderboard")
def leaderboard(
    ctx: typer.Context,
    tag: Annotated[str | None, typer.Option(help="rank by trust for this capability")] = None,
    tier: Annotated[TrustTier | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
    output: OutputOption = Output.TABLE,
) -> None:
    """Most trusted agents first."""

    def action(client: Client) -> None:
        board = client.trust.leaderboard(tag=tag, tier=tier, limit=limit)
        if output == Output.JSON:
            print_json(board)
            return
        rows = [
            [e.rank, e.agent_id, f"{e.trust_score:.3f}", e.trust_tier.value, f"{e.success_rate:.0%}", e.total_tasks]
            for e in board.entries
        ]
        table(
            f"trust leaderboard{f' for {tag}' if tag else ''}",
            ["#", "agent", "trust", "tier", "success", "tasks"],
            rows,
        )

    run(ctx, action)


@trust_app.command("history")
def history(
    ctx: typer.Context,
    agent_id: str,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="how many records, newest first")] = 20,
    output: OutputOption = Output.TABLE,
) -> None:
    """An agent's trust changes (audit records), newest first."""

    def action(client: Client) -> None:
        records = []
        for record in client.trust.history(agent_id, limit=min(limit, 100)):
            records.append(record)
            if len(records) >= limit:
                break
        if output == Output.JSON:
            print_json(records)
            return
        rows = [
            [
                f"{r.created_at:%m-%d %H:%M:%S}",
                r.event_type,
                f"{r.score_before:.3f} -> {r.score_after:.3f}",
                f"{r.delta:+.3f}",
                r.task_id,
                r.reason,
            ]
            for r in records
        ]
        table(f"trust history of {agent_id}", ["time", "event", "score", "delta", "task", "reason"], rows)

    run(ctx, action)
