"""``ains schedules ...`` and ``ains webhooks ...``."""

from __future__ import annotations

from typing import Annotated

import typer

from ains.models.schedules import ScheduleView
from ains.models.webhooks import DeliveryStatus, DeliveryView
from ains.sdk.cli.common import Output, OutputOption, out, print_json, run, table
from ains.sdk.client import Client

schedules_app = typer.Typer(help="Recurring tasks (Temporal Schedules).", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhook deliveries and the dead-letter queue.", no_args_is_help=True)
NoteOption = Annotated[str | None, typer.Option(help="why (shown in the schedule and the Temporal UI)")]


def _schedule_row(s: ScheduleView) -> list[object]:
    when = s.cron or f"every {s.interval_seconds}s"
    following = s.next_run_times[0].isoformat(timespec="seconds") if s.next_run_times else ""
    counts = f"{s.run_counts.ok} ok / {s.run_counts.failed} failed / {s.run_counts.skipped} skipped"
    return [s.id, s.name, when, "paused" if s.paused else "active", following, counts]


def _print_schedule(view: ScheduleView, output: Output) -> None:
    if output == Output.JSON:
        print_json(view)
    else:
        table(None, ["id", "name", "when", "state", "next run", "runs"], [_schedule_row(view)])


@schedules_app.command("ls")
def list_schedules(ctx: typer.Context, output: OutputOption = Output.TABLE) -> None:
    """Your schedules with their next run and run counts."""

    def action(client: Client) -> None:
        schedules = list(client.schedules.iter(limit=100))
        if output == Output.JSON:
            print_json(schedules)
        else:
            table(None, ["id", "name", "when", "state", "next run", "runs"], [_schedule_row(s) for s in schedules])

    run(ctx, action)


@schedules_app.command("pause")
def pause(ctx: typer.Context, schedule_id: str, note: NoteOption = None, output: OutputOption = Output.TABLE) -> None:
    """Stop starting runs until resumed."""
    run(ctx, lambda client: _print_schedule(client.schedules.pause(schedule_id, note), output))


@schedules_app.command("resume")
def resume(ctx: typer.Context, schedule_id: str, note: NoteOption = None, output: OutputOption = Output.TABLE) -> None:
    """Start runs again."""
    run(ctx, lambda client: _print_schedule(client.schedules.resume(schedule_id, note), output))


@schedules_app.command("trigger")
def trigger(ctx: typer.Context, schedule_id: str, output: OutputOption = Output.TABLE) -> None:
    """Run once now (also while paused)."""
    run(ctx, lambda client: _print_schedule(client.schedules.trigger(schedule_id), output))


def _delivery_row(d: DeliveryView) -> list[object]:
    return [d.id, d.event_type, d.status.value, d.url, d.attempts, d.last_error]


@webhooks_app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    dead: Annotated[bool, typer.Option("--dead", help="only the dead-letter queue")] = False,
    status: Annotated[DeliveryStatus | None, typer.Option()] = None,
    webhook: Annotated[str | None, typer.Option(help="only this subscription's")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    output: OutputOption = Output.TABLE,
) -> None:
    """Deliveries, newest first; --dead lists the ones that ran out of retries."""

    def action(client: Client) -> None:
        wanted = DeliveryStatus.DEAD if dead else status
        found: list[DeliveryView] = []
        for delivery in client.webhooks.iter_deliveries(status=wanted, webhook_id=webhook, limit=min(limit, 200)):
            found.append(delivery)
            if len(found) >= limit:
                break
        if output == Output.JSON:
            print_json(found)
        else:
            table(None, ["id", "event", "status", "url", "attempts", "last error"], [_delivery_row(d) for d in found])

    run(ctx, action)


@webhooks_app.command("replay")
def replay(ctx: typer.Context, delivery_id: str, output: OutputOption = Output.TABLE) -> None:
    """Deliver a (dead) delivery again with a fresh retry period."""

    def action(client: Client) -> None:
        view = client.webhooks.replay(delivery_id)
        if output == Output.JSON:
            print_json(view)
        else:
            out.print(f"{view.id}: {view.status.value} (replayed)", highlight=False)

    run(ctx, action)
