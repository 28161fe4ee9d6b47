"""Starting a submitted task's run after POST /v1/tasks has been answered.

The task's row is committed before the answer, so the task is accepted durably and readable at once; the run's
StartWorkflowExecution then goes on in the background instead of inside the request. A client no longer waits
for Temporal's start (on the dev server alone, in bench/results/REPORT.md's runs: p50 2-5 ms but p95 23-31 ms at
one client, p95 91-110 ms at eight), and a task submitted while Temporal is briefly unreachable is accepted
instead of refused.

Nothing accepted is lost: a start that fails (Temporal unreachable beyond the client's own retries, the API
process killed before it ran) leaves the task ``pending`` with no status reason, and the dispatch reconciler
starts every such task (``core.routing.dispatch.Dispatcher.start_unstarted``, within about 30-45 s by default).
Starting is idempotent, so a start that did happen is never repeated.

Bounded: at most ``limit`` starts are in flight. Beyond that a POST waits for one of them to end before it hands
over its own and answers, so the API accepts tasks no faster than Temporal starts them and memory does not grow
with a burst; a POST never waits for its own start. Shutdown waits a few seconds for the starts in flight.
"""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.service import RPCError

from ains.api.metrics import TASK_STARTS
from ains.core.platform.temporal import is_transient
from ains.core.tasks.start import start_task_workflow
from ains.models.workflow_io import TaskWorkflowInput

log = logging.getLogger("ains.api.starts")

DEFAULT_LIMIT = 32
SHUTDOWN_WAIT_SECONDS = 5.0


class TaskStarter:
    """Starts task runs in the background, at most ``limit`` at a time; beyond that a caller waits for a turn."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._turns = asyncio.Semaphore(limit)
        self._in_flight: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def start(self, client: Client, params: TaskWorkflowInput) -> None:
        """Start the run in the background; when ``limit`` starts are in flight, first wait for one to end."""
        await self._turns.acquire()
        task = asyncio.create_task(self._start(client, params), name=f"start-{params.task_id}")
        self._in_flight.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._turns.release()

    async def _start(self, client: Client, params: TaskWorkflowInput) -> None:
        try:
            await start_task_workflow(client, params)
        except Exception as exc:  # whatever it was, the reconciler starts the task
            TASK_STARTS.labels(outcome="deferred").inc()
            reason = exc.message if isinstance(exc, RPCError) else repr(exc)
            # Refused (not merely unreachable) is a configuration problem, e.g. a namespace without AINS's search
            # attributes, that the reconciler's retries will not cure.
            level = logging.WARNING if is_transient(exc) else logging.ERROR
            log.log(
                level,
                "task %s accepted, its run not started yet (the reconciler will retry): %s",
                params.task_id,
                reason,
            )
            return
        TASK_STARTS.labels(outcome="started").inc()

    async def close(self) -> None:
        """Wait up to SHUTDOWN_WAIT_SECONDS for the starts in flight; those cut short are the reconciler's."""
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=SHUTDOWN_WAIT_SECONDS)
