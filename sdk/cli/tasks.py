"""``ains task ...`` and ``ains batch submit``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from ains.models.tasks import TaskStatus, TaskView
from ains.sdk.cli.common import (
    EXIT_UNSUCCESSFUL,
    EXIT_USAGE,
    Output,
    OutputOption,
    err,
    fail,
    fields,
    out,
    parse_json_arg,
    print_json,
    read_document,
    run,
    seconds_between,
    table,
)
from ains.sdk.client import Client
from ains.sdk.errors import WaitTimeout

task_app = typer.Typer(help="Submit, inspect and cancel tasks.", no_args_is_help=True)
batch_app = typer.Typer(help="Submit many tasks at once.", no_args_is_help=True)


def describe(view: TaskView) -> str:
    """One status line: pending -> routing (and why) -> running on agent X -> final, with its duration."""
    status = view.status.value
    if view.status == TaskStatus.RUNNING and view.assigned_agent_id:
        line = f"running on {view.assigned_agent_id} (attempt {view.attempts}/{view.max_attempts})"
    elif view.status.is_final:
        took = seconds_between(view.created_at, view.completed_at)
        line = f"{status} in {took}" if took else status
        if view.assigned_agent_id:
            line += f" on {view.assigned_agent_id}"
    else:
        line = status
    if view.status_reason and not view.status == TaskStatus.SUCCEEDED:
        line += f" — {view.status_reason}"
    return f"{view.id}: {line}"


def show_task(view: TaskView) -> None:
    fields(
        [
            ("id", view.id),
            ("type", view.type),
            ("status", view.status.value),
            ("reason", view.status_reason),
            ("agent", view.assigned_agent_id),
            ("attempts", f"{view.attempts}/{view.max_attempts}"),
            ("priority", view.priority),
            ("created", view.created_at),
            ("completed", view.completed_at),
            ("result", view.result),
            ("error", view.error),
            ("error code", view.error_code),
            ("temporal", view.temporal_ui_url),
        ]
    )


def exit_for(view: TaskView) -> None:
    if view.status != TaskStatus.SUCCEEDED:
        raise typer.Exit(EXIT_UNSUCCESSFUL)


def follow(client: Client, task_id: str, timeout: float | None, output: Output) -> TaskView:
    """Follow the task's event stream with a live status line on stderr; returns its final state."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last: TaskView | None = None
    with err.status(f"{task_id}: waiting", spinner="dots") as status:
        while last is None or not last.status.is_final:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeout(
                    f"task {task_id} not finished after {timeout}s ({describe(last) if last else 'no news'})", last
                )
            for view in client.tasks.events(task_id, timeout=remaining):
                if last is None or describe(view) != describe(last):
                    status.update(describe(view))
                    if output == Output.TABLE:
                        err.print(describe(view), highlight=False)
                last = view
    return last


@task_app.command("submit")
def submit(
    ctx: typer.Context,
    task_type: Annotated[str, typer.Argument(metavar="TYPE", help="What to do, e.g. summarize")],
    input: Annotated[str, typer.Option("--input", "-i", help="task input: JSON or @file")] = "{}",
    priority: Annotated[int | None, typer.Option(min=1, max=10, help="1 lowest, 10 highest")] = None,
    capability: Annotated[
        list[str] | None, typer.Option("--capability", "-c", help="required tag, e.g. 'summarize>=2.0' (repeatable)")
    ] = None,
    timeout_seconds: Annotated[int | None, typer.Option(help="per-attempt limit")] = None,
    max_attempts: Annotated[int | None, typer.Option()] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="default: one generated for this submission")] = None,
    wait: Annotated[bool, typer.Option("--wait", "-w", help="follow the task until it finishes")] = False,
    wait_timeout: Annotated[float | None, typer.Option(help="give up waiting after this many seconds")] = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Submit a task; with --wait, follow it live and exit 0 only if it succeeded."""
    task_input = parse_json_arg(input, "--input")
    if not isinstance(task_input, dict):
        fail("--input must be a JSON object", EXIT_USAGE)
    spec: dict[str, Any] = {"type": task_type, "input": task_input}
    optional = {"priority": priority, "timeout_seconds": timeout_seconds, "max_attempts": max_attempts}
    spec.update({k: v for k, v in optional.items() if v is not None})
    if capability:
        spec["required_capabilities"] = capability

    def action(client: Client) -> None:
        accepted = client.tasks.submit(spec, idempotency_key=idempotency_key)
        if not wait:
            if output == Output.JSON:
                print_json(accepted)
            else:
                out.print(f"{accepted.id} {accepted.status.value}  {accepted.temporal_ui_url}", highlight=False)
            return
        final = follow(client, accepted.id, wait_timeout, output)
        print_json(final) if output == Output.JSON else show_task(final)
        exit_for(final)

    run(ctx, action)


@task_app.command("get")
def get(ctx: typer.Context, task_id: str, output: OutputOption = Output.TABLE) -> None:
    """One task: status, agent, attempts, result or error."""

    def action(client: Client) -> None:
        view = client.tasks.get(task_id)
        print_json(view) if output == Output.JSON else show_task(view)

    run(ctx, action)


@task_app.command("ls")
def list_tasks(
    ctx: typer.Context,
    status: Annotated[TaskStatus | None, typer.Option(help="only tasks in this status")] = None,
    task_type: Annotated[str | None, typer.Option("--type", help="only tasks of this type")] = None,
    agent: Annotated[str | None, typer.Option(help="only tasks assigned to this agent")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="how many (newest first)")] = 20,
    output: OutputOption = Output.TABLE,
) -> None:
    """Your tasks, newest first."""

    def action(client: Client) -> None:
        views: list[TaskView] = []
        for view in client.tasks.iter(status=status, type=task_type, agent_id=agent, limit=min(limit, 200)):
            views.append(view)
            if len(views) >= limit:
                break
        if output == Output.JSON:
            print_json(views)
            return
        rows = [
            [v.id, v.type, v.status.value, v.assigned_agent_id, v.attempts, f"{v.created_at:%m-%d %H:%M:%S}"]
            for v in views
        ]
        table(None, ["id", "type", "status", "agent", "attempts", "created"], rows)

    run(ctx, action)


@task_app.command("cancel")
def cancel(ctx: typer.Context, task_id: str, output: OutputOption = Output.TABLE) -> None:
    """Cancel a task (the running agent call is cancelled)."""

    def action(client: Client) -> None:
        view = client.tasks.cancel(task_id)
        print_json(view) if output == Output.JSON else out.print(f"{view.id}: cancel requested ({view.status.value})")

    run(ctx, action)


@task_app.command("feedback")
def feedback(
    ctx: typer.Context,
    task_id: str,
    score: Annotated[float, typer.Argument(help="How good the result was, 0 (worst) to 1 (best).")],
    label: Annotated[str | None, typer.Option(help="A short label, e.g. 'correct'.")] = None,
    comment: Annotated[str | None, typer.Option(help="Free text.")] = None,
    output: OutputOption = Output.TABLE,
) -> None:
    """Rate a succeeded task's result; adaptive routing learns from it (sending again replaces the score)."""

    def action(client: Client) -> None:
        view = client.tasks.feedback(task_id, score, label=label, comment=comment)
        if output == Output.JSON:
            print_json(view)
        else:
            out.print(f"{view.task_id}: feedback {view.score:g} on {view.agent_id} (revision {view.revisions})")

    run(ctx, action)


@task_app.command("receipt")
def receipt(ctx: typer.Context, task_id: str, output: OutputOption = Output.TABLE) -> None:
    """Routing receipts: per attempt, the candidates, why each was removed, the scores and the winner."""

    def action(client: Client) -> None:
        routing = client.tasks.routing(task_id)
        if output == Output.JSON:
            print_json(routing)
            return
        for r in routing.receipts:
            rows = [[c.agent_id, c.eliminated_by or "eligible", c.score, c.trust, c.detail] for c in r.candidates]
            title = (
                f"attempt {r.attempt}: {r.outcome} -> {r.winner_agent_id or '-'} ({r.reason}, {r.duration_ms:.1f} ms)"
            )
            table(title, ["agent", "filter", "score", "trust", "detail"], rows)

    run(ctx, action)


@batch_app.command("submit")
def submit_batch(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help='JSON or YAML: a list of tasks or {"tasks": [...]}')],
    output: OutputOption = Output.TABLE,
) -> None:
    """Submit up to 1,000 tasks, all or nothing."""
    document = read_document(file, "batch")
    batch = {"tasks": document} if isinstance(document, list) else document

    def action(client: Client) -> None:
        accepted = client.batches.submit(batch)
        if output == Output.JSON:
            print_json(accepted)
            return
        out.print(f"batch {accepted.batch_id}: {len(accepted.tasks)} task(s)", highlight=False)
        table(None, ["id", "status", "created"], [[t.id, t.status.value, t.created] for t in accepted.tasks])

    run(ctx, action)
