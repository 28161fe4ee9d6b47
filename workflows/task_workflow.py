"""TaskWorkflow: route a task to an agent, call it, record the outcome; re-route on failure.

Every side effect happens in an activity; the workflow only decides. Routing and recording are local
activities (cheap on the Temporal server); the agent call is a local activity too for an HTTP agent measured
fast (an inline call, cut at INLINE_CALL_LIMIT), else a regular activity on the agent-calls queue.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.types import MethodAsyncSingleParam, ParamType, ReturnType, SelfType

from ains.workflows.events import emit_task_event

with workflow.unsafe.imports_passed_through():
    from ains.activities.agent_calls import AgentCallActivities
    from ains.activities.registry import RegistryActivities
    from ains.activities.routed_calls import RoutedCallActivities
    from ains.models import search_attributes as sa
    from ains.models.contract import (
        AGENTS_QUEUE,
        DEPENDENCY_FINISHED_SIGNAL,
        LLM_QUEUE,
        SLOT_ASSIGNED_SIGNAL,
        SLOT_FREED_SIGNAL,
        TASK_WORKFLOW_NAME,
    )
    from ains.models.priority import effective_priority, task_queue_priority
    from ains.models.tasks import TaskStatus
    from ains.models.workflow_io import (
        INLINE_CALL_LIMIT_SECONDS,
        ONE_STEP_ATTEMPTS,
        PLATFORM_ERROR,
        ROUTED_CALLS,
        TASK_FAILURE_TYPES,
        AgentCallRequest,
        AgentCallResult,
        AttemptRecord,
        CallOutcome,
        DependentsRequest,
        FinishResult,
        RetrySpec,
        RouteAndCall,
        RouteDecision,
        RouteOutcome,
        RouteRequest,
        SlotAssignment,
        TaskFinish,
        TaskStatusUpdate,
        TaskWorkflowInput,
        TaskWorkflowResult,
        WakeRequest,
        attempt_record,
        calls_inline,
        status_after,
    )

# Bookkeeping against the registry DB: retried until the DB is back (e.g. during a restart).
REGISTRY_TIMEOUT = timedelta(seconds=15)
REGISTRY_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))
REGISTRY_SCHEDULE_TO_CLOSE = timedelta(minutes=30)
# Waking a waiting task is an optimisation (it polls anyway): give up quickly rather than hold this task.
WAKE_SCHEDULE_TO_CLOSE = timedelta(seconds=30)
# Dependencies wake the waiting task by signal; this re-check only guards against a lost signal.
DEPENDENCY_RECHECK = timedelta(minutes=10)
# The agent call: its own timeout is enforced inside the activity; this margin covers our overhead.
AGENT_CALL_MARGIN = timedelta(seconds=15)
# Retries here only cover a lost worker; agent failures come back as results and are re-routed instead.
AGENT_CALL_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=5)
INLINE_CALL_LIMIT = timedelta(seconds=INLINE_CALL_LIMIT_SECONDS)
INLINE_CALL_RETRY = RetryPolicy(maximum_attempts=1)  # the queue's delivery is the retry
# Runs recorded before hand-over dispatch polled while they waited (they replay on the v1 path).
BUSY_POLL_INITIAL = timedelta(seconds=1)
BUSY_POLL_MAX = timedelta(seconds=30)
# Runs started with this patch wait passively for a hand-over (core.routing.dispatch) and finish in one step. Runs
# started since (TaskWorkflowInput.history_version = ONE_STEP_ATTEMPTS) take the same path without calling
# patched(), which would cost every run a marker and a search-attribute upsert, and record each attempt inside
# its agent call (one_step).
DISPATCH_PATCH = "ains-handover-dispatch"


def _bookkeeping(
    activity: MethodAsyncSingleParam[SelfType, ParamType, ReturnType],
    arg: ParamType,
    schedule_to_close: timedelta = REGISTRY_SCHEDULE_TO_CLOSE,
) -> Awaitable[ReturnType]:
    """A registry local activity, retried until the DB answers (e.g. during a restart), or ``schedule_to_close``."""
    return workflow.execute_local_activity_method(
        activity,
        arg,
        start_to_close_timeout=REGISTRY_TIMEOUT,
        schedule_to_close_timeout=schedule_to_close,
        retry_policy=REGISTRY_RETRY,
    )


def _backoff(params: TaskWorkflowInput, attempt: int) -> timedelta:
    """Delay before attempt ``attempt + 1``: the task's retry policy, else the submission-time default."""
    retry = params.retry or RetrySpec(initial_interval_seconds=params.policy.retry_backoff_seconds)
    seconds = retry.initial_interval_seconds * retry.backoff_coefficient ** (attempt - 1)
    return timedelta(seconds=min(seconds, retry.maximum_interval_seconds))


async def _inline(
    activity: MethodAsyncSingleParam[SelfType, ParamType, ReturnType], arg: ParamType, summary: str
) -> ReturnType | None:
    """A local activity that calls an agent inline, held to INLINE_CALL_LIMIT with a single try. A worker lost
    mid-call is noticed by the workflow task's timeout and the call is made again on replay. None when the agent
    has not answered within the limit, or the activity failed on our side: the caller delivers the call again
    through the queue, with its retries, under the same task id and attempt (which agents deduplicate: the SDK
    answers from its first run)."""
    try:
        return await workflow.execute_local_activity_method(
            activity,
            arg,
            start_to_close_timeout=INLINE_CALL_LIMIT,
            retry_policy=INLINE_CALL_RETRY,
            summary=summary,
        )
    # A local activity's failure can come back bare, not wrapped in an ActivityError (always so on replay, where
    # it is read from the activity's marker).
    except (TemporalTimeoutError, ApplicationError):
        return None
    except CancelledError as err:
        raise asyncio.CancelledError from err
    except ActivityError as err:
        if isinstance(err.cause, CancelledError):
            raise asyncio.CancelledError from err
        return None


def _after_inline_try(request: AgentCallRequest, spent: timedelta) -> AgentCallRequest:
    """A call delivered through the queue after an inline try that did not answer: what is left of its timeout."""
    seconds = math.ceil(spent.total_seconds())
    return request.model_copy(update={"timeout_seconds": max(1, request.timeout_seconds - seconds)})


@dataclass(frozen=True)
class _Routed:
    """An attempt's routing outcome in the workflow."""

    decision: RouteDecision
    called: AgentCallResult | None = None  # the inline call route_and_call made
    inline_tried_for: timedelta | None = None  # how long a route_and_call that did not answer took


@workflow.defn(name=TASK_WORKFLOW_NAME)
class TaskWorkflow:
    def __init__(self) -> None:
        self._woken = False
        self._dependency_news = False
        self._attempt = 0
        self._agent_id: str | None = None
        self._assignment: SlotAssignment | None = None
        self._one_step = False

    @workflow.signal(name=SLOT_FREED_SIGNAL)
    def slot_freed(self) -> None:
        """(v1 runs) Another task released an agent this task may use: route again now."""
        self._woken = True

    @workflow.signal(name=SLOT_ASSIGNED_SIGNAL)
    def slot_assigned(self, assignment: SlotAssignment) -> None:
        """A releasing agent reserved its slot for this task's waiting attempt: call that agent now."""
        # Before run() begins (a hand-over that started the run) the first attempt is the one meant.
        if assignment.attempt == max(self._attempt, 1):
            self._assignment = assignment
        self._woken = True  # a v1 run routes again and finds the reservation

    @workflow.signal(name=DEPENDENCY_FINISHED_SIGNAL)
    def dependency_finished(self, task_id: str) -> None:
        """A task this one depends on reached its final status: check the dependencies again."""
        self._dependency_news = True

    @workflow.query
    def progress(self) -> dict[str, object]:
        return {"attempt": self._attempt, "agent_id": self._agent_id}

    @workflow.run
    async def run(self, params: TaskWorkflowInput) -> TaskWorkflowResult:
        self._one_step = params.history_version >= ONE_STEP_ATTEMPTS
        if params.assignment is not None and self._assignment is None:
            self._assignment = (
                params.assignment
            )  # started by its hand-over (queued ahead: core.composition.batch_queue)
        if not self._one_step and not workflow.patched(DISPATCH_PATCH):
            return await self._run_v1(params)
        try:
            blocked = await self._wait_for_dependencies(params) if params.depends_on else None
            result = blocked or await self._attempts(params)
        except asyncio.CancelledError:
            await self._finish(params, TaskStatus.CANCELLED, "cancelled by request", None)
            raise
        return result

    async def _attempts(self, params: TaskWorkflowInput) -> TaskWorkflowResult:
        failed_agents: list[str] = []
        last: AgentCallResult | None = None
        for attempt in range(1, params.max_attempts + 1):
            self._attempt = attempt
            plan = RouteAndCall(
                route=self._route_request(params, attempt, failed_agents),
                timeout_seconds=params.timeout_seconds,
                last_attempt=attempt == params.max_attempts,
                policy=params.policy,
            )
            routed = await self._route(params, plan)
            decision = routed.decision
            if decision.outcome is not RouteOutcome.ASSIGNED or decision.agent_id is None:
                no_agent = (
                    "no_capable_agent" if decision.outcome is RouteOutcome.NO_CAPABLE_AGENT else "no_agent_available"
                )
                return await self._finish(params, TaskStatus.FAILED, decision.reason, no_agent)

            agent_id: str = decision.agent_id
            self._agent_id = agent_id
            if not self._one_step:  # one-step runs set the agent with the final status: one upsert per run
                workflow.upsert_search_attributes(
                    [sa.AGENT_ID.value_set(agent_id), sa.STATUS.value_set(TaskStatus.RUNNING.value)]
                )
            workflow.set_current_details(f"attempt {attempt}/{params.max_attempts} on agent `{agent_id}`")
            call = plan.call(decision, record=self._one_step)
            result = routed.called
            if result is None:
                inline = calls_inline(decision.agent_kind, decision.agent_avg_response_ms, params.policy)
                if inline and routed.inline_tried_for is not None:
                    # The failed step may have called this agent: the queue, with what is left of the timeout.
                    call, inline = _after_inline_try(call, routed.inline_tried_for), False
                result = await self._call_agent(params, call, decision.agent_kind, inline)
            record = attempt_record(call, result)
            finished = result.finished
            if finished is None:  # not recorded in the call (an older run, a failed recording, async completion)
                finished = await _bookkeeping(RegistryActivities.finish_attempt, record)
            if record.final:
                error = None if result.outcome is CallOutcome.SUCCESS else result.error
                status = TaskStatus(record.task_status)
                outcome = self._result(params, status, error, result.error_code or record.error_code)
                return await self._finished(params, outcome, finished)
            last = result
            if result.error_code != PLATFORM_ERROR:  # the agent did nothing wrong: it may be chosen again
                failed_agents.append(agent_id)
            await workflow.sleep(_backoff(params, attempt))
        raise AssertionError(f"unreachable: the last attempt is final ({last})")

    def _route_request(self, params: TaskWorkflowInput, attempt: int, failed_agents: list[str]) -> RouteRequest:
        return RouteRequest(
            task_id=params.task_id,
            attempt=attempt,
            required_capabilities=params.required_capabilities,
            failed_agent_ids=failed_agents,
            strategy=params.routing_strategy,
            min_trust=params.min_trust,
            excluded_agent_ids=params.excluded_agent_ids,
            priority_aging_seconds=params.policy.priority_aging_seconds,
            adaptive=params.adaptive,
            # Queued ahead of its run (a batch): its hand-over started the run with the assignment already here.
            queued=params.queued and attempt == 1,
        )

    async def _route(self, params: TaskWorkflowInput, plan: RouteAndCall) -> _Routed:
        """The attempt's agent. Runs from ROUTED_CALLS on route and call a fast agent in one local activity
        (route_and_call); a task with an assignment in hand (queued ahead, handed over) or that must wait for
        one gets it from _assignment_for."""
        attempt = plan.route.attempt
        if self._assignment is not None and self._assignment.attempt != attempt:
            self._assignment = None  # a re-sent assignment of an earlier attempt (the reconciler after a crash)
        routes_alone = params.history_version < ROUTED_CALLS or params.policy.inline_call_max_ms <= 0
        if routes_alone or self._assignment is not None or plan.route.queued:
            return _Routed(await self._assignment_for(params, plan.route))
        started = workflow.now()
        routed = await _inline(RoutedCallActivities.route_and_call, plan, f"route and call inline (attempt {attempt})")
        if routed is None:
            # Route again with the registry's retries (which finds a reservation the failed step made); an inline
            # call then goes through the queue, as an inline call past its limit does.
            tried_for = workflow.now() - started
            return _Routed(await self._assignment_for(params, plan.route), inline_tried_for=tried_for)
        if routed.decision.outcome is RouteOutcome.ALL_BUSY:
            return _Routed(await self._assignment_for(params, plan.route, busy=routed.decision))
        return _Routed(routed.decision, routed.result)

    async def _assignment_for(
        self, params: TaskWorkflowInput, request: RouteRequest, busy: RouteDecision | None = None
    ) -> RouteDecision:
        """Route; while every capable agent is busy, wait passively for a hand-over (a signal), up to the
        queue timeout. A long jittered re-check is only a safety net against a lost signal. ``busy``: the
        decision of a routing step just taken (route_and_call), which queued the task up."""
        limit = timedelta(seconds=params.queue_wait_seconds())
        # Queued ahead of its run: the first attempt has waited since the task was queued.
        deadline = (self._queued_since(params) if request.queued else workflow.now()) + limit
        waiting_for = "its agents are busy"
        if busy is not None:
            request = request.model_copy(update={"queued": True})
            waiting_for = busy.reason
        routed_already = busy is not None
        while True:
            if self._assignment is None and not routed_already:
                decision: RouteDecision = await _bookkeeping(RegistryActivities.route_task, request)
                if decision.outcome is not RouteOutcome.ALL_BUSY:
                    return decision
                request = request.model_copy(update={"queued": True})
                waiting_for = decision.reason
            routed_already = False
            while self._assignment is None:
                remaining = deadline - workflow.now()
                if remaining <= timedelta(0):
                    return RouteDecision(
                        outcome=RouteOutcome.ALL_BUSY,
                        reason=f"no capable agent became free within {limit.total_seconds():g}s: {waiting_for}",
                    )
                recheck = timedelta(
                    seconds=params.policy.dispatch_recheck_seconds * (0.75 + workflow.random().random() / 2)
                )
                try:
                    await workflow.wait_condition(lambda: self._assignment is not None, timeout=min(remaining, recheck))
                except TimeoutError:
                    break  # route again: finds a reservation whose signal was lost, or a slot nobody handed over
            if self._assignment is not None:
                handed, self._assignment = self._assignment, None
                return handed.as_decision()

    async def _finish(
        self, params: TaskWorkflowInput, status: TaskStatus, reason: str | None, code: str | None
    ) -> TaskWorkflowResult:
        """A final status outside an attempt outcome, with its follow-ups, in one local activity."""
        finish = TaskFinish(task_id=params.task_id, status=status.value, reason=reason, error_code=code)
        finished: FinishResult = await _bookkeeping(RegistryActivities.finish_task, finish)
        return await self._finished(params, self._result(params, status, reason, code), finished)

    async def _finished(
        self, params: TaskWorkflowInput, result: TaskWorkflowResult, finished: FinishResult
    ) -> TaskWorkflowResult:
        """Ends the run as the task ended: completed when it succeeded, *failed* (with the error code and reason,
        the result as the failure's details) when it failed or timed out, so the Temporal UI's status column,
        filters and failure counts agree with AINS. A cancelled task's run is cancelled by run()."""
        attributes = [sa.STATUS.value_set(result.status)]
        if self._one_step and result.agent_id is not None:
            attributes.append(sa.AGENT_ID.value_set(result.agent_id))
        workflow.upsert_search_attributes(attributes)
        if not finished.followups_done:  # Temporal or the DB refused them inside finish_*: retry separately
            await self._followups(params, result.status)
        if result.status in (TaskStatus.FAILED.value, TaskStatus.TIMED_OUT.value):
            raise ApplicationError(
                f"task {result.status}: {result.error_code or 'error'}: {result.error or 'no reason given'}",
                result,
                type=TASK_FAILURE_TYPES[result.status],
                non_retryable=True,
            )
        return result

    async def _followups(self, params: TaskWorkflowInput, status: str) -> None:
        try:
            await _bookkeeping(RegistryActivities.notify_dependents, DependentsRequest(task_id=params.task_id))
        except ActivityError:
            workflow.logger.warning("could not notify the dependents of %s; they re-check on their own", params.task_id)
        await emit_task_event(params.task_id, status)

    async def _run_v1(self, params: TaskWorkflowInput) -> TaskWorkflowResult:
        """Runs recorded before hand-over dispatch replay here unchanged (same commands, same order)."""
        try:
            blocked = await self._wait_for_dependencies(params, v1=True) if params.depends_on else None
            result = blocked or await self._run_attempts(params)
        except asyncio.CancelledError:
            await self._set_status(params.task_id, TaskStatus.CANCELLED, "cancelled by request", None)
            if self._agent_id is not None:
                await self._wake_next(params, self._agent_id)
            await self._on_finished(params, self._result(params, TaskStatus.CANCELLED, "cancelled by request"))
            raise
        await self._on_finished(params, result)
        return result

    async def _run_attempts(self, params: TaskWorkflowInput) -> TaskWorkflowResult:
        failed_agents: list[str] = []
        last: AgentCallResult | None = None
        for attempt in range(1, params.max_attempts + 1):
            self._attempt = attempt
            decision = await self._route_with_wait(params, attempt, failed_agents)
            if decision.outcome is not RouteOutcome.ASSIGNED or decision.agent_id is None:
                no_agent = (
                    "no_capable_agent" if decision.outcome is RouteOutcome.NO_CAPABLE_AGENT else "no_agent_available"
                )
                await self._set_status(params.task_id, TaskStatus.FAILED, decision.reason, no_agent)
                return self._result(params, TaskStatus.FAILED, decision.reason)

            agent_id: str = decision.agent_id
            self._agent_id = agent_id
            workflow.upsert_search_attributes(
                [sa.AGENT_ID.value_set(agent_id), sa.STATUS.value_set(TaskStatus.RUNNING.value)]
            )
            workflow.set_current_details(f"attempt {attempt}/{params.max_attempts} on agent `{agent_id}`")
            is_last = attempt == params.max_attempts
            call = AgentCallRequest(
                task_id=params.task_id,
                attempt=attempt,
                agent_id=agent_id,
                endpoint_url=decision.endpoint_url or "",
                timeout_seconds=params.timeout_seconds,
            )
            result = await self._call_agent(params, call, decision.agent_kind)
            status_value, reason, code = status_after(result, attempt, is_last, agent_id)
            status = TaskStatus(status_value)
            await _bookkeeping(
                RegistryActivities.record_attempt,
                AttemptRecord(
                    task_id=params.task_id,
                    attempt=attempt,
                    agent_id=agent_id,
                    result=result,
                    task_status=status.value,
                    status_reason=reason,
                    error_code=code,
                ),
            )
            await self._wake_next(params, agent_id)
            if result.outcome is CallOutcome.SUCCESS:
                return self._result(params, status, None)
            last = result
            failed_agents.append(agent_id)
            if not is_last:
                await workflow.sleep(_backoff(params, attempt))
        timed_out = last is not None and last.outcome is CallOutcome.TIMEOUT
        final = TaskStatus.TIMED_OUT if timed_out else TaskStatus.FAILED
        return self._result(params, final, last.error if last else None)

    async def _route_with_wait(
        self, params: TaskWorkflowInput, attempt: int, failed_agents: list[str]
    ) -> RouteDecision:
        """Route; while capable agents exist but are all busy or down, wait up to the policy's limit."""
        waited = timedelta(0)
        poll = BUSY_POLL_INITIAL
        limit = timedelta(seconds=params.queue_wait_seconds())
        reported: str | None = None
        while True:
            decision = await _bookkeeping(
                RegistryActivities.route_task,
                RouteRequest(
                    task_id=params.task_id,
                    attempt=attempt,
                    required_capabilities=params.required_capabilities,
                    failed_agent_ids=failed_agents,
                    strategy=params.routing_strategy,
                    min_trust=params.min_trust,
                    excluded_agent_ids=params.excluded_agent_ids,
                    priority_aging_seconds=params.policy.priority_aging_seconds,
                    adaptive=params.adaptive,
                ),
            )
            if decision.outcome is not RouteOutcome.ALL_BUSY:
                return decision
            if waited >= limit:
                return RouteDecision(
                    outcome=RouteOutcome.ALL_BUSY,
                    reason=f"no capable agent became free within {limit.total_seconds():g}s: {decision.reason}",
                )
            if decision.reason != reported:
                await self._set_status(
                    params.task_id, TaskStatus.ROUTING, f"waiting for an agent: {decision.reason}", None
                )
                reported = decision.reason
            pause = min(poll, limit - waited)
            self._woken = False
            try:
                await workflow.wait_condition(lambda: self._woken, timeout=pause)
            except TimeoutError:
                pass
            waited += pause
            poll = min(poll * 2, BUSY_POLL_MAX)

    async def _call_agent(
        self, params: TaskWorkflowInput, request: AgentCallRequest, kind: str, inline: bool = False
    ) -> AgentCallResult:
        started = workflow.now()
        attempt, agent_id = request.attempt, request.agent_id
        try:
            if inline:
                inline_result = await self._call_inline(request)
                if inline_result is not None:
                    return inline_result
                request = _after_inline_try(request, workflow.now() - started)
            if kind == "llm":
                # An llm agent: activities.llm_calls.call_llm on its own queue, same timeouts, retries and result.
                llm_result: AgentCallResult = await workflow.execute_activity(
                    "call_llm",
                    request,
                    result_type=AgentCallResult,
                    task_queue=LLM_QUEUE,
                    start_to_close_timeout=timedelta(seconds=params.timeout_seconds) + AGENT_CALL_MARGIN,
                    heartbeat_timeout=timedelta(seconds=params.policy.heartbeat_timeout_seconds),
                    priority=task_queue_priority(self._effective_priority(params), params.client_id),
                    retry_policy=AGENT_CALL_RETRY,
                    summary=f"call llm agent {agent_id} (attempt {attempt})",
                )
                return llm_result
            return await workflow.execute_activity_method(
                AgentCallActivities.call_agent,
                request,
                task_queue=params.agent_calls_queue or AGENTS_QUEUE,
                start_to_close_timeout=timedelta(seconds=params.timeout_seconds) + AGENT_CALL_MARGIN,
                heartbeat_timeout=timedelta(seconds=params.policy.heartbeat_timeout_seconds),
                # Aged like routing order, so a long-waiting task is not overtaken on a congested agents queue.
                priority=task_queue_priority(self._effective_priority(params), params.client_id),
                retry_policy=AGENT_CALL_RETRY,
                summary=f"call agent {agent_id} (attempt {attempt})",
            )
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                raise asyncio.CancelledError from err  # the task was cancelled; run() records it
            # Every retry of the call failed on our side (worker lost, activity timed out, our own exception):
            # the attempt fails as a platform error, which moves no trust.
            elapsed_ms = (workflow.now() - started).total_seconds() * 1000
            kind = "timed out" if isinstance(err.cause, TemporalTimeoutError) else "failed"
            return AgentCallResult(
                outcome=CallOutcome.FAILURE,
                error=f"the agent call {kind} on AINS's side on every retry: {err.cause or err}",
                duration_ms=elapsed_ms,
                error_code=PLATFORM_ERROR,
            )

    async def _call_inline(self, request: AgentCallRequest) -> AgentCallResult | None:
        """A fast HTTP agent's call inside this workflow task (calls_inline): no activity task."""
        summary = f"call agent {request.agent_id} inline (attempt {request.attempt})"
        return await _inline(AgentCallActivities.call_agent, request, summary)

    async def _set_status(self, task_id: str, status: TaskStatus, reason: str | None, code: str | None) -> None:
        await _bookkeeping(
            RegistryActivities.set_task_status,
            TaskStatusUpdate(task_id=task_id, status=status.value, reason=reason, error_code=code),
        )

    @staticmethod
    def _queued_since(params: TaskWorkflowInput) -> datetime:
        """When a task queued ahead of its run began to wait (runs started delayed, before queued_since: the
        run's creation)."""
        return params.queued_since or workflow.info().workflow_start_time

    def _effective_priority(self, params: TaskWorkflowInput) -> float:
        since = self._queued_since(params) if params.queued else workflow.info().start_time
        waited = (workflow.now() - since).total_seconds()
        return effective_priority(params.priority, waited, params.policy.priority_aging_seconds)

    async def _wake_next(self, params: TaskWorkflowInput, agent_id: str) -> None:
        try:
            await _bookkeeping(
                RegistryActivities.wake_waiting_task,
                WakeRequest(agent_id=agent_id, priority_aging_seconds=params.policy.priority_aging_seconds),
                WAKE_SCHEDULE_TO_CLOSE,
            )
        except ActivityError:
            workflow.logger.warning("could not wake a waiting task for agent %s; it will poll", agent_id)

    async def _wait_for_dependencies(self, params: TaskWorkflowInput, v1: bool = False) -> TaskWorkflowResult | None:
        """Block until every dependency succeeded (None) or one did not (the failed result).

        Woken by the ``dependency_finished`` signal; the dependencies are re-read from the registry after
        every wake-up and, as a safety net only, every DEPENDENCY_RECHECK.
        """
        reported = False
        while True:
            state = await _bookkeeping(
                RegistryActivities.check_dependencies,
                DependentsRequest(task_id=params.task_id),
            )
            if state.failed is not None:
                reason = f"dependency {state.failed} ended {state.failed_status}"
                if not v1:
                    return await self._finish(params, TaskStatus.FAILED, reason, "dependency_failed")
                await self._set_status(params.task_id, TaskStatus.FAILED, reason, "dependency_failed")
                return self._result(params, TaskStatus.FAILED, reason)
            if not state.pending:
                return None
            if not reported:
                reason = f"waiting for {len(state.pending)} dependency(ies): {', '.join(state.pending[:5])}"
                await self._set_status(params.task_id, TaskStatus.PENDING, reason, None)
                reported = True
            self._dependency_news = False
            try:
                await workflow.wait_condition(lambda: self._dependency_news, timeout=DEPENDENCY_RECHECK)
            except TimeoutError:
                pass

    async def _on_finished(self, params: TaskWorkflowInput, result: TaskWorkflowResult) -> None:
        """Runs once when the task reaches its final status (already recorded in the registry)."""
        workflow.upsert_search_attributes([sa.STATUS.value_set(result.status)])
        try:
            await _bookkeeping(
                RegistryActivities.notify_dependents,
                DependentsRequest(task_id=params.task_id),
            )
        except ActivityError:
            workflow.logger.warning("could not notify the dependents of %s; they re-check on their own", params.task_id)
        await emit_task_event(params.task_id, result.status)

    def _result(
        self, params: TaskWorkflowInput, status: TaskStatus, error: str | None, code: str | None = None
    ) -> TaskWorkflowResult:
        return TaskWorkflowResult(
            task_id=params.task_id,
            status=status.value,
            agent_id=self._agent_id,
            attempts=self._attempt,
            error=error,
            error_code=code,
        )
