"""Temporal workers, one per task queue. ``ains worker --queue all`` runs every queue in one process."""

from __future__ import annotations

import asyncio
import compileall
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import aiohttp
from redis.asyncio import Redis
from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from ains import workflows
from ains.activities.agent_calls import AgentCallActivities
from ains.activities.batches import BatchActivities
from ains.activities.compositions import CompositionActivities
from ains.activities.dispatch import DispatchActivities
from ains.activities.health import HealthActivities
from ains.activities.llm_calls import LlmCallActivities
from ains.activities.registry import RegistryActivities
from ains.activities.routed_calls import RoutedCallActivities
from ains.activities.schedules import ScheduleActivities
from ains.activities.webhooks import EventActivities, WebhookActivities
from ains.core.llm.service import LlmService
from ains.core.platform.db import Database
from ains.core.platform.metrics import serve_worker_metrics, stop_worker_metrics
from ains.core.platform.outbound_http import new_session
from ains.core.platform.settings import Settings
from ains.core.platform.temporal import connect
from ains.core.routing.dispatch import DeliveredFlags, Dispatcher
from ains.core.schedules.system import ensure_health_schedule, ensure_reconcile_schedule
from ains.core.tasks.attempt_finish import AttemptFinisher
from ains.models.contract import AGENTS_QUEUE, ALL_QUEUES, LLM_QUEUE, ORCHESTRATION_QUEUE, WEBHOOKS_QUEUE
from ains.workflows.catalog import ALL_WORKFLOWS
from ains.workflows.webhook_delivery import WebhookDeliveryWorkflow

log = logging.getLogger("ains.worker")


def precompile_workflows() -> None:
    """Write the workflow modules' bytecode once, so the sandbox's per-run import of a workflow module does not
    compile its source every time (it would with PYTHONDONTWRITEBYTECODE set and no __pycache__: about 3 ms
    per run for TaskWorkflow, a third of the worker's CPU under load). Reading stays allowed either way."""
    package = Path(workflows.__file__).parent
    try:
        compileall.compile_dir(package, quiet=1)
    except OSError as exc:  # a read-only install: imports still work, only slower
        log.warning("could not write bytecode for %s: %s", package, exc)


def start_worker_metrics(port: int, sdk_metrics_url: str | None, stack: AsyncExitStack, host: str) -> None:
    """AINS and Temporal SDK metrics together on ``host:port`` (core.platform.metrics); a busy port is logged, not fatal."""
    try:
        bound = serve_worker_metrics(port, sdk_metrics_url, host)
    except OSError as exc:
        log.error("cannot serve worker metrics on %s:%d: %s", host, port, exc)
        return
    stack.callback(stop_worker_metrics, bound)


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandbox when AINS_WORKFLOW_SANDBOX is set (as in the test suite), else plain execution: see Settings."""
    return SandboxedWorkflowRunner() if settings.workflow_sandbox else UnsandboxedWorkflowRunner()


def resolve_queues(names: Sequence[str]) -> list[str]:
    """Short names (``orchestration``, ``agents``) or ``all`` to Temporal task-queue names."""
    if "all" in names:
        return list(ALL_QUEUES.values())
    unknown = [n for n in names if n not in ALL_QUEUES]
    if unknown:
        raise ValueError(f"unknown queue(s) {', '.join(unknown)}; choose from {', '.join(ALL_QUEUES)} or all")
    return [ALL_QUEUES[n] for n in names]


def build_workers(
    client: Client,
    db: Database,
    http: aiohttp.ClientSession,
    settings: Settings,
    queues: Sequence[str],
    finisher: AttemptFinisher | None = None,
) -> list[Worker]:
    sticky = timedelta(seconds=settings.worker_sticky_timeout_seconds)
    grace = timedelta(seconds=settings.worker_shutdown_grace_seconds)
    workers: list[Worker] = []
    # Agent and LLM calls record their attempt themselves (one step per attempt, see core.tasks.attempt_finish).
    finisher = finisher or AttemptFinisher(db, client, settings)
    calls = AgentCallActivities(
        db,
        http,
        settings.agent_signing_secret,
        settings.agent_heartbeat_interval_seconds,
        settings.agent_connect_timeout_seconds,
        finisher,
    )
    if ORCHESTRATION_QUEUE in queues:
        calls_here = ALL_QUEUES[settings.agent_calls_queue] == ORCHESTRATION_QUEUE
        registry = RegistryActivities(db, client, settings.routing_cache_ttl_seconds, settings)
        routed_calls = RoutedCallActivities(registry, calls)
        compositions = CompositionActivities(db, settings)
        events = EventActivities(db, settings)
        scheduled = ScheduleActivities(db, settings)
        batches = BatchActivities(db, client, settings)
        reconciler = DispatchActivities(db, Dispatcher(db, client, settings))
        workers.append(
            Worker(
                client,
                task_queue=ORCHESTRATION_QUEUE,
                workflows=ALL_WORKFLOWS,
                workflow_runner=workflow_runner(settings),
                activities=[
                    registry.route_task,
                    registry.finish_attempt,
                    registry.finish_task,
                    registry.record_attempt,
                    registry.set_task_status,
                    registry.wake_waiting_task,
                    registry.check_dependencies,
                    registry.notify_dependents,
                    compositions.prepare_step,
                    compositions.save_composition_state,
                    events.emit_task_event,
                    scheduled.submit_scheduled_task,
                    scheduled.await_task,
                    scheduled.cancel_task,
                    batches.start_batch_tasks,
                    reconciler.reconcile_dispatch,
                    routed_calls.route_and_call,
                    # Agent calls scheduled on this queue (Settings.agent_calls_queue) run here, eagerly: eager
                    # activity execution needs the very Worker that completed the workflow task to have them.
                    calls.call_agent,
                ],
                max_concurrent_activities=settings.agent_call_concurrency if calls_here else None,
                # Inline calls (a fast agent's, models.workflow_io.calls_inline) are local activities here.
                max_concurrent_local_activities=settings.agent_call_concurrency if calls_here else None,
                sticky_queue_schedule_to_start_timeout=sticky,
                graceful_shutdown_timeout=grace,
            )
        )
    if AGENTS_QUEUE in queues:
        health = HealthActivities(db, http, client, settings)
        workers.append(
            Worker(
                client,
                task_queue=AGENTS_QUEUE,
                activities=[calls.call_agent, health.check_agent_health],
                max_concurrent_activities=settings.agent_call_concurrency,  # also runs calls of older runs
                graceful_shutdown_timeout=grace,
            )
        )
    if WEBHOOKS_QUEUE in queues:
        deliveries = WebhookActivities(db, http, settings)
        workers.append(
            Worker(
                client,
                task_queue=WEBHOOKS_QUEUE,
                workflows=[WebhookDeliveryWorkflow],
                workflow_runner=workflow_runner(settings),
                activities=[deliveries.attempt_delivery, deliveries.finish_delivery],
                max_concurrent_activities=200,
                sticky_queue_schedule_to_start_timeout=sticky,
                graceful_shutdown_timeout=grace,
            )
        )
    if LLM_QUEUE in queues:
        # Redis (when configured) shares the LLM response cache between workers; its pool closes with the process.
        cache_redis = (
            Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
            if settings.redis_url
            else None
        )
        service = LlmService.from_settings(settings, db, cache_redis)
        service.providers.preload()
        llm = LlmCallActivities(service, settings.agent_heartbeat_interval_seconds, finisher)
        workers.append(
            Worker(
                client,
                task_queue=LLM_QUEUE,
                activities=[llm.call_llm],
                max_concurrent_activities=200,
                graceful_shutdown_timeout=grace,
            )
        )
    return workers


async def run_workers(
    settings: Settings,
    queues: Sequence[str],
    stop: asyncio.Event,
    runtime: Runtime | None = None,
    sdk_metrics_url: str | None = None,
) -> None:
    """Run workers for ``queues`` until ``stop`` is set, then drain in-flight work and exit.

    With ``AINS_WORKER_METRICS_PORT`` set, serves AINS metrics there, plus the SDK's from ``sdk_metrics_url``.
    """
    if settings.workflow_sandbox and (ORCHESTRATION_QUEUE in queues or WEBHOOKS_QUEUE in queues):
        precompile_workflows()
    async with AsyncExitStack() as stack:
        db = Database(settings.effective_database_url, settings.database_pool_size)
        stack.push_async_callback(db.dispose)
        http = await stack.enter_async_context(new_session(settings))
        client = await connect(settings, runtime)
        if settings.worker_metrics_port:
            start_worker_metrics(settings.worker_metrics_port, sdk_metrics_url, stack, settings.worker_metrics_host)
        if ORCHESTRATION_QUEUE in queues:
            await ensure_health_schedule(client, settings)
            await ensure_reconcile_schedule(client, settings)
        # The calls' recordings clear delivered hand-overs' pending flags in batches (core.routing.dispatch.DeliveredFlags):
        # flushed after the workers drained, before the database is disposed.
        flags = DeliveredFlags(db, delay=min(1.0, settings.dispatch_reconcile_after_seconds / 5))
        stack.push_async_callback(flags.flush)
        workers = build_workers(client, db, http, settings, queues, AttemptFinisher(db, client, settings, flags))
        for worker in workers:
            await stack.enter_async_context(worker)
        log.info("worker polling %s", ", ".join(queues))
        await stop.wait()
        log.info("worker draining")
