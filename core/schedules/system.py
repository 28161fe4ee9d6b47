"""Schedules AINS keeps for itself (not users' schedules): the agent health check, the dispatch reconciler."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from ains.core.platform.settings import Settings
from ains.models.contract import HEALTH_WORKFLOW_NAME, ORCHESTRATION_QUEUE, RECONCILE_WORKFLOW_NAME
from ains.models.health import HealthCheckInput
from ains.models.workflow_io import ReconcileInput

HEALTH_SCHEDULE_ID = "ains-agent-health-check"
RECONCILE_SCHEDULE_ID = "ains-dispatch-reconciler"


async def _ensure_every(
    client: Client, schedule_id: str, workflow: str, arg: object, workflow_id: str, every_seconds: float
) -> None:
    """Create a schedule that starts ``workflow`` every ``every_seconds`` (skipping a start while one still runs),
    unless it exists already; visible and pausable in the Temporal UI."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(workflow, arg, id=workflow_id, task_queue=ORCHESTRATION_QUEUE),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=every_seconds))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        pass


async def ensure_health_schedule(client: Client, settings: Settings) -> None:
    """The agent health check's schedule."""
    check = HealthCheckInput(
        timeout_seconds=settings.health_check_timeout_seconds, heartbeat_ttl_seconds=settings.heartbeat_ttl_seconds
    )
    await _ensure_every(
        client,
        HEALTH_SCHEDULE_ID,
        HEALTH_WORKFLOW_NAME,
        check,
        "ains-agent-health",
        settings.health_check_interval_seconds,
    )


async def ensure_reconcile_schedule(client: Client, settings: Settings) -> None:
    """The dispatch reconciler's schedule (core.routing.dispatch.reconcile)."""
    await _ensure_every(
        client,
        RECONCILE_SCHEDULE_ID,
        RECONCILE_WORKFLOW_NAME,
        ReconcileInput(after_seconds=settings.dispatch_reconcile_after_seconds),
        "ains-dispatch-reconcile",
        settings.dispatch_reconcile_interval_seconds,
    )
