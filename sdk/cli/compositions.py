"""``ains chain run`` and ``ains plan run``: submit a composition from a file and watch its steps live."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.live import Live
from rich.table import Table

from ains.models.plans import PlanView
from ains.sdk.cli.common import EXIT_UNSUCCESSFUL, Output, OutputOption, err, out, print_json, read_document, run
from ains.sdk.client import Client

chain_app = typer.Typer(help="Run task chains (steps in order).", no_args_is_help=True)
plan_app = typer.Typer(help="Run multi-agent plans (DAGs of steps).", no_args_is_help=True)
STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "skipped": "dim", "running": "cyan"}


def steps_table(view: PlanView) -> Table:
    grid = Table(title=f"{view.kind} {view.id} ({view.name or 'unnamed'}): {view.status} {view.progress}")
    for column in ("step", "status", "depends on", "task", "reason"):
        grid.add_column(column, overflow="fold")
    for step in view.steps:
        style = STYLE.get(step.status, "")
        status = f"[{style}]{step.status}[/]" if style else step.status
        grid.add_row(step.name, status, ", ".join(step.depends_on), step.task_id or "", step.reason or "")
    return grid


def _run(ctx: typer.Context, kind: Literal["chain", "plan"], file: Path, watch: bool, output: Output) -> None:
    document = read_document(file, kind)

    def action(client: Client) -> None:
        resource = client.chains if kind == "chain" else client.plans
        view = resource.create(document)
        if watch:
            if output == Output.TABLE:
                with Live(steps_table(view), console=err, refresh_per_second=8) as live:
                    for current in resource.watch(view.id):
                        live.update(steps_table(current))
                        view = current
            else:
                view = resource.wait(view.id)
        if output == Output.JSON:
            print_json(view)
        elif not watch:
            out.print(steps_table(view))
        else:
            out.print(f"{kind} {view.id}: {view.status} ({view.progress})", highlight=False)
        if watch and view.status != "succeeded":
            raise typer.Exit(EXIT_UNSUCCESSFUL)

    run(ctx, action)


@chain_app.command("run")
def run_chain(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="the chain as YAML or JSON (POST /v1/task-chains body)")],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="show the steps live until the chain ends")] = False,
    output: OutputOption = Output.TABLE,
) -> None:
    """Start a chain; with --watch, follow its steps and exit 0 only if it succeeded."""
    _run(ctx, "chain", file, watch, output)


@plan_app.command("run")
def run_plan(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="the plan as YAML or JSON (POST /v1/plans body)")],
    watch: Annotated[bool, typer.Option("--watch", "-w", help="show the DAG's steps live until the plan ends")] = False,
    output: OutputOption = Output.TABLE,
) -> None:
    """Start a plan; with --watch, follow its steps and exit 0 only if it succeeded."""
    _run(ctx, "plan", file, watch, output)


def _show(ctx: typer.Context, kind: Literal["chain", "plan"], composition_id: str, output: Output) -> None:
    def action(client: Client) -> None:
        view = (client.chains if kind == "chain" else client.plans).get(composition_id)
        print_json(view) if output == Output.JSON else out.print(steps_table(view))

    run(ctx, action)


@chain_app.command("get")
def get_chain(ctx: typer.Context, chain_id: str, output: OutputOption = Output.TABLE) -> None:
    """A chain with each step's state."""
    _show(ctx, "chain", chain_id, output)


@plan_app.command("get")
def get_plan(ctx: typer.Context, plan_id: str, output: OutputOption = Output.TABLE) -> None:
    """A plan with each node's state."""
    _show(ctx, "plan", plan_id, output)
