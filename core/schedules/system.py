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


async def ensure_health_schedule(client: Client, settings: Settings) -> None:
    """Create the health-check schedule once; visible and pausable in the Temporal UI."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            HEALTH_WORKFLOW_NAME,
            HealthCheckInput(
                timeout_seconds=settings.health_check_timeout_seconds,
                heartbeat_ttl_seconds=settings.heartbeat_ttl_seconds,
            ),
            id="ains-agent-health",
            task_queue=ORCHESTRATION_QUEUE,
        ),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=settings.health_check_interval_seconds))]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(HEALTH_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:
        pass


async def ensure_reconcile_schedule(client: Client, settings: Settings) -> None:
    """Create the dispatch reconciler's schedule once (core.routing.dispatch.reconcile); visible in the Temporal UI."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            RECONCILE_WORKFLOW_NAME,
            ReconcileInput(after_seconds=settings.dispatch_reconcile_after_seconds),
            id="ains-dispatch-reconcile",
            task_queue=ORCHESTRATION_QUEUE,
        ),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=settings.dispatch_reconcile_interval_seconds))]
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(RECONCILE_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:
        pass
