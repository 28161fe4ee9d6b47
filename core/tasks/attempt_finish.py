"""What follows an attempt: record it, hand the freed slot over, and when the task is done notify its dependents
and emit its event. Run by the agent call's own activity (one step per attempt) or, as a fallback and for older
runs, by TaskWorkflow's finish_attempt local activity."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.service import RPCError

from ains.core.platform.db import Database, driver_fetch
from ains.core.platform.settings import Settings
from ains.core.routing.dispatch import DeliveredFlags, Dispatcher, HandOver, hand_over
from ains.core.tasks.attempts import moves_trust, record_attempt
from ains.core.tasks.dependencies import waiting_dependents
from ains.core.webhooks.events import dispatch_pending, emit_task_event
from ains.models.contract import DEPENDENCY_FINISHED_SIGNAL
from ains.models.tasks import FINAL_STATUSES
from ains.models.workflow_io import (
    AgentCallRequest,
    AgentCallResult,
    AttemptRecord,
    CallOutcome,
    FinishResult,
    attempt_record,
)

log = logging.getLogger("ains.attempts")

_OUTCOME_OF_ATTEMPT = {"succeeded": CallOutcome.SUCCESS, "timed_out": CallOutcome.TIMEOUT}


def recorded_result(
    attempt_status: str | None, error: str | None, duration_ms: float | None, error_code: str | None
) -> AgentCallResult | None:
    """The outcome an attempt was recorded with (None while it runs, or when it was never recorded): what a
    retried call returns instead of calling the agent again, after the worker that recorded it died.
    ``finished`` stays None, so the workflow's own finish step completes any follow-up the lost worker did not."""
    if attempt_status is None or attempt_status in ("running", "cancelled"):
        return None
    return AgentCallResult(
        outcome=_OUTCOME_OF_ATTEMPT.get(attempt_status, CallOutcome.FAILURE),
        error=error,
        duration_ms=duration_ms or 0.0,
        error_code=error_code,
        output_stored=True,  # the output is the task's result already; nothing to carry
    )


# What may follow a recorded attempt, read in one statement in its transaction (it was four reads, each in its
# own session): a waiting task (hand the slot over), an unfinished dependent (signal it), a callback or
# webhook subscription (record the event), webhook deliveries not yet started (a trust tier change, say).
_FOLLOW_UPS = (
    "SELECT EXISTS (SELECT 1 FROM task_waits), "
    "EXISTS (SELECT 1 FROM task_dependencies d JOIN tasks t ON t.id = d.task_id WHERE d.depends_on_id = {task} "
    f"AND t.status NOT IN ({', '.join(sorted(repr(status.value) for status in FINAL_STATUSES))})), "
    "EXISTS (SELECT 1 FROM tasks t WHERE t.id = {task} AND (coalesce(t.callback_url, '') <> '' "
    "OR EXISTS (SELECT 1 FROM webhook_subscriptions s WHERE s.client_id = t.client_id))), "
    "EXISTS (SELECT 1 FROM webhook_deliveries WHERE dispatched_at IS NULL)"
)
_FOLLOW_UPS_SQLITE = _FOLLOW_UPS.format(task="?1")
_FOLLOW_UPS_POSTGRES = _FOLLOW_UPS.format(task="$1")


@dataclass(frozen=True)
class FollowUps:
    someone_waits: bool
    dependents_wait: bool
    listened: bool
    deliveries_pending: bool


async def _follow_ups(session: AsyncSession, task_id: str) -> FollowUps:
    row = (
        await driver_fetch(
            session, sqlite=(_FOLLOW_UPS_SQLITE, (task_id,)), postgres=(_FOLLOW_UPS_POSTGRES, (task_id,))
        )
    )[0]
    return FollowUps(*(bool(value) for value in row))


class AttemptFinisher:
    def __init__(
        self, db: Database, client: Client | None, settings: Settings, flags: DeliveredFlags | None = None
    ) -> None:
        self._db = db
        self._client = client
        self._settings = settings
        self.dispatcher = Dispatcher(db, client, settings, flags)

    async def finish(self, record: AttemptRecord) -> FinishResult:
        """Record the attempt (trust, status) at most once and hand the freed slot over, in one transaction;
        then tell the task it went to, and when this task is done run its follow-ups."""

        async def record_and_hand_over(session: AsyncSession) -> tuple[bool, FollowUps, list[HandOver]]:
            applied = await record_attempt(session, record)
            follow = await _follow_ups(session, record.task_id)
            # An applied record that moves trust locked the agent's row (core.tasks.attempts) before the hand-over does.
            locked = applied and moves_trust(record.result)
            handed = await hand_over(session, record.agent_id, self._settings, locked) if follow.someone_waits else []
            return applied, follow, handed

        applied, follow, handed = await self.dispatcher.in_one_transaction(record_and_hand_over)
        if handed:
            await self.dispatcher.announce(handed, source="attempt")
        else:
            # A task may have begun to wait after this transaction read the queue and checked for a free slot
            # before it committed (Postgres): look once more, now that the freed slot is visible to everyone.
            await self.dispatcher.release([record.agent_id], source="attempt")
        done = await self.after_final(record.task_id, record.task_status, follow) if record.final else True
        return FinishResult(applied=applied, followups_done=done)

    async def finish_call(self, request: AgentCallRequest, result: AgentCallResult) -> AgentCallResult:
        """``result`` with the attempt recorded when the request asks for it. A recording that fails (the
        registry is down) is left to the workflow, which retries it until the registry is back: the agent is
        never called twice because of our own fault."""
        if not request.record:
            return result
        try:
            finished = await self.finish(attempt_record(request, result))
        except Exception as exc:
            log.warning("attempt %d of %s not recorded in its call: %s", request.attempt, request.task_id, exc)
            return result
        return result.model_copy(update={"finished": finished})

    async def after_final(self, task_id: str, status: str, follow: FollowUps | None = None) -> bool:
        """Notify dependents and emit the event; False when either failed (the workflow then runs them as
        separate local activities with their own retries). ``follow``: what was read after the final commit."""
        try:
            if follow is None:
                async with self._db.session() as session:
                    follow = await _follow_ups(session, task_id)
            if follow.dependents_wait:
                await self.notify(task_id)
            if self._client is not None and follow.listened:
                await emit_task_event(self._db, self._client, self._settings, task_id, status)
            elif self._client is not None and follow.deliveries_pending:
                await dispatch_pending(self._db, self._client, self._settings)
        except Exception as exc:  # Temporal or the DB unavailable: left to the workflow's fallback
            log.warning("follow-ups of task %s not done here: %s", task_id, exc)
            return False
        return True

    async def notify(self, task_id: str) -> int:
        """Signal every unfinished task waiting on this one (run after its final status is committed).

        A dependent whose workflow has not started yet misses the signal, but its own first check reads the
        committed status, so no wake-up is lost.
        """
        if self._client is None:
            return 0
        async with self._db.session() as session:
            workflow_ids = await waiting_dependents(session, task_id)
        notified = 0
        for workflow_id in workflow_ids:
            try:
                await self._client.get_workflow_handle(workflow_id).signal(DEPENDENCY_FINISHED_SIGNAL, task_id)
                notified += 1
            except RPCError:  # not started yet, or already finished: see the docstring
                continue
        return notified
