"""Temporal client creation and starting task workflows."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.common import (
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from core.settings import ORCHESTRATION_QUEUE, Settings
from models import search_attributes as sa
from models.priority import task_queue_priority
from models.workflow_io import TaskWorkflowInput

TASK_WORKFLOW_NAME = "TaskWorkflow"
# Bounds a task's whole life (all attempts, backoff and waiting for agents) so nothing runs forever.
TASK_EXECUTION_SLACK = timedelta(hours=1)


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    # Interceptors on the client also apply to workers built on it: domain metrics, and tracing when enabled.
    from core.metrics import DomainMetricsInterceptor
    from core.tracing import temporal_interceptors

    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
        interceptors=[DomainMetricsInterceptor(), *temporal_interceptors(settings)],
    )


def prometheus_runtime(port: int, host: str = "127.0.0.1") -> Runtime:
    """An SDK runtime that serves worker metrics (task latencies, slots, polls) on ``host:port``."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"{host}:{port}")))


def task_workflow_id(task_id: str) -> str:
    return f"task-{task_id}"


async def start_task_workflow(client: Client, params: TaskWorkflowInput, settings: Settings) -> None:
    """Start the task's workflow once. Safe to call again for the same task: an existing or finished run is kept."""
    budget = params.max_attempts * (params.timeout_seconds + settings.retry_backoff_seconds * 8)
    execution_timeout = timedelta(seconds=budget + settings.no_agent_wait_seconds) + TASK_EXECUTION_SLACK
    try:
        await client.start_workflow(
            TASK_WORKFLOW_NAME,
            params,
            id=task_workflow_id(params.task_id),
            task_queue=ORCHESTRATION_QUEUE,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            execution_timeout=execution_timeout,
            priority=task_queue_priority(params.priority, params.client_id),
            search_attributes=sa.new_task_attributes(params.client_id, params.task_type, params.priority),
            static_summary=f"{params.task_type} task {params.task_id} (priority {params.priority})",
        )
    except WorkflowAlreadyStartedError:
        pass
