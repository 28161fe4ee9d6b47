"""Payloads that cross Temporal between workflows and activities (via pydantic_data_converter).

They stay small: task input and output live in the registry DB, workflows carry ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel


class ExecutionPolicy(BaseModel):
    """Tuning fixed at submission, so a run replays identically even if a worker's Settings change."""

    heartbeat_timeout_seconds: float = 10.0
    retry_backoff_seconds: float = 1.0
    no_agent_wait_seconds: float = 300.0
    priority_aging_seconds: float = 60.0
    # A task waiting for a hand-over re-checks the registry itself this often (jittered), as a safety net.
    dispatch_recheck_seconds: float = 300.0
    # HTTP agents whose mean response time is at most this are called inline (a local activity); 0: never.
    inline_call_max_ms: float = 0.0


class RetrySpec(BaseModel):
    """Backoff between attempts of a task: initial * coefficient^(attempt-1), capped at maximum."""

    initial_interval_seconds: float = 1.0
    backoff_coefficient: float = 2.0
    maximum_interval_seconds: float = 300.0


# Set on every TaskWorkflow started from this version on: the run records each attempt inside its agent call
# (one step, no patch marker). Runs started before carry 0 and tell their path apart by the patch marker.
ONE_STEP_ATTEMPTS = 3
# From this version on, an attempt routes and, for an agent called inline, calls in one local activity
# (route_and_call): one local activity per attempt instead of two.
ROUTED_CALLS = 4
# An inline call holds its workflow task open: past this it is handed to the queue (below the SDK's 5 s warning
# for a long workflow task, with room for the routing step in the same task).
INLINE_CALL_LIMIT_SECONDS = 3.0


class AdaptiveTuning(BaseModel):
    """The adaptive strategy's objective and scales, fixed at submission (AINS_ADAPTIVE_* and the task's
    objectives), so a replayed decision sees what the first one saw."""

    quality: float = 0.6
    latency: float = 0.2
    cost: float = 0.2
    latency_scale_ms: float = 1000.0
    cost_scale_usd: float = 0.01
    exploration_floor: float = 0.02
    exploration_cap: float = 0.25


class SlotAssignment(BaseModel):
    """Given to a waiting task by whoever freed a slot (a signal, or its run's input): the slot is reserved (the attempt row exists)."""

    attempt: int
    agent_id: str
    endpoint_url: str
    agent_kind: str = "http"
    reason: str
    agent_avg_response_ms: float | None = None  # the agent's mean response time when the slot was handed over

    def as_decision(self) -> RouteDecision:
        """The routing decision this hand-over stands for: the reserved agent, assigned."""
        return RouteDecision(
            outcome=RouteOutcome.ASSIGNED,
            agent_id=self.agent_id,
            endpoint_url=self.endpoint_url,
            reason=self.reason,
            agent_kind=self.agent_kind,
            agent_avg_response_ms=self.agent_avg_response_ms,
        )


class TaskWorkflowInput(BaseModel):
    task_id: str
    client_id: str
    task_type: str
    required_capabilities: list[str]
    priority: int
    timeout_seconds: int
    max_attempts: int
    policy: ExecutionPolicy = ExecutionPolicy()
    routing_strategy: str = "least_loaded"
    min_trust: float | None = None
    excluded_agent_ids: list[str] = []
    queue_timeout_seconds: float | None = None
    retry: RetrySpec | None = None
    depends_on: list[str] = []
    history_version: int = 0
    adaptive: AdaptiveTuning | None = None
    # The task queue of its HTTP agent calls (Settings.agent_calls_queue); None: the agents queue (older runs).
    agent_calls_queue: str | None = None
    # Joined the dispatch queue before its run started (a batch bigger than its agents' free slots, core.
    # batch_queue). Its run starts when a hand-over gives it a slot, with the slot as ``assignment``, so its
    # first attempt needs no routing step of its own; or, with no assignment, when its queue timeout ran out
    # (the dispatch reconciler) or it is cancelled. Runs started before migration 0011 were started delayed
    # and got their assignment as a signal (SignalWithStart).
    queued: bool = False
    # When a queued task began to wait (its creation): its first attempt's queue timeout counts from here.
    queued_since: datetime | None = None
    assignment: SlotAssignment | None = None

    def queue_wait_seconds(self) -> float:
        """How long an attempt may wait for an agent: the task's own queue timeout, else the policy's."""
        own = self.queue_timeout_seconds
        return self.policy.no_agent_wait_seconds if own is None else own


class RouteRequest(BaseModel):
    task_id: str
    attempt: int
    required_capabilities: list[str]
    failed_agent_ids: list[str]
    strategy: str = "least_loaded"
    min_trust: float | None = None
    excluded_agent_ids: list[str] = []
    priority_aging_seconds: float = 0.0
    # The task already has a row in the dispatch queue (it waits, and routes again as a safety net).
    queued: bool = False
    adaptive: AdaptiveTuning | None = None


class WakeRequest(BaseModel):
    agent_id: str
    priority_aging_seconds: float = 0.0


class RouteOutcome(StrEnum):
    ASSIGNED = "assigned"
    NO_CAPABLE_AGENT = "no_capable_agent"
    ALL_BUSY = "all_busy"


class RouteDecision(BaseModel):
    outcome: RouteOutcome
    agent_id: str | None = None
    endpoint_url: str | None = None
    reason: str
    agent_kind: str = "http"
    agent_avg_response_ms: float | None = None  # the chosen agent's mean response time (see calls_inline)


def calls_inline(agent_kind: str, agent_avg_response_ms: float | None, policy: ExecutionPolicy) -> bool:
    """Whether the agent call runs inline, as a local activity of the workflow task that decided it, rather
    than as an activity task: for HTTP agents known to answer within the policy's limit. It saves the activity's
    trip through Temporal (schedule, start, complete, and the workflow task that follows) on every call."""
    limit = policy.inline_call_max_ms
    return agent_kind == "http" and limit > 0 and agent_avg_response_ms is not None and agent_avg_response_ms <= limit


class TaskFinish(BaseModel):
    """A final status reached outside an attempt outcome (no agent, cancelled), with what follows from it."""

    task_id: str
    status: str
    reason: str | None = None
    error_code: str | None = None


class ReconcileInput(BaseModel):
    after_seconds: float = 5.0


class ReconcileResult(BaseModel):
    resent: int
    released: int
    handed_over: int
    expired: int = 0  # queued tasks without a run whose queue timeout ran out: their runs started
    unstarted: int = 0  # pending tasks whose run had taken no step: started again (idempotent)


class AgentCallRequest(BaseModel):
    task_id: str
    attempt: int
    agent_id: str
    endpoint_url: str
    timeout_seconds: int
    # Record the attempt (and what follows from it) in the call's own activity, as the last attempt when
    # last_attempt: the workflow then needs no bookkeeping step after the call.
    record: bool = False
    last_attempt: bool = False


class RouteAndCall(BaseModel):
    """Route an attempt and, when the chosen agent is called inline (calls_inline), call it in the same local
    activity, recording the attempt (AgentCallRequest.record)."""

    route: RouteRequest
    timeout_seconds: int
    last_attempt: bool
    policy: ExecutionPolicy

    def call(self, decision: RouteDecision, record: bool = True) -> AgentCallRequest:
        """The agent call of an assigned decision."""
        return AgentCallRequest(
            task_id=self.route.task_id,
            attempt=self.route.attempt,
            agent_id=decision.agent_id or "",
            endpoint_url=decision.endpoint_url or "",
            timeout_seconds=self.timeout_seconds,
            record=record,
            last_attempt=self.last_attempt,
        )


# The error code of an attempt that failed on AINS's side (request not buildable, worker lost on every retry,
# activity timeout): never a trust record against the agent, never a reason to avoid it on re-routing.
PLATFORM_ERROR = "platform_error"


class CallOutcome(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"


class FinishResult(BaseModel):
    applied: bool  # False: already recorded (a retry or replay)
    followups_done: bool  # dependents notified and the event emitted; False: the workflow runs them itself


class AgentCallResult(BaseModel):
    outcome: CallOutcome
    output: dict[str, Any] | None = None
    error: str | None = None
    duration_ms: float
    # Set when the failure has a more precise code than agent_error (e.g. budget_exceeded).
    error_code: str | None = None
    # The output was too large to pass through the workflow: it waits in the attempt's row instead.
    output_stored: bool = False
    # Set when the call's activity recorded the attempt itself (AgentCallRequest.record); None: the workflow
    # records it (the recording failed, the agent completes asynchronously, or an older run).
    finished: FinishResult | None = None


class RoutedCall(BaseModel):
    """What route_and_call did: the routing decision, and the inline call's result when it made the call."""

    decision: RouteDecision
    result: AgentCallResult | None = None


class AttemptRecord(BaseModel):
    """Outcome of one attempt plus the task status the workflow decided follows from it."""

    task_id: str
    attempt: int
    agent_id: str
    result: AgentCallResult
    task_status: str
    status_reason: str | None = None
    error_code: str | None = None
    # finish_attempt: hand the freed slot over and, when the status is final, notify dependents and emit
    # the task's event in the same local activity.
    final: bool = False


def status_after(
    result: AgentCallResult, attempt: int, is_last: bool, agent_id: str
) -> tuple[str, str | None, str | None]:
    """The task's status, reason and error code once an attempt ended with ``result``."""
    if result.outcome is CallOutcome.SUCCESS:
        return "succeeded", None, None
    code = "agent_timeout" if result.outcome is CallOutcome.TIMEOUT else "agent_error"
    if is_last:
        status = "timed_out" if result.outcome is CallOutcome.TIMEOUT else "failed"
        return status, f"attempt {attempt} on agent {agent_id}: {result.error}", code
    return "routing", f"attempt {attempt} on agent {agent_id} failed ({result.error}); re-routing", code


def attempt_record(request: AgentCallRequest, result: AgentCallResult) -> AttemptRecord:
    """What the registry records for a call: the same in the call's activity and in the workflow."""
    status, reason, code = status_after(result, request.attempt, request.last_attempt, request.agent_id)
    return AttemptRecord(
        task_id=request.task_id,
        attempt=request.attempt,
        agent_id=request.agent_id,
        result=result,
        task_status=status,
        status_reason=reason,
        error_code=code,
        final=result.outcome is CallOutcome.SUCCESS or request.last_attempt,
    )


class TaskStatusUpdate(BaseModel):
    task_id: str
    status: str
    reason: str | None = None
    error_code: str | None = None


class TaskWorkflowResult(BaseModel):
    task_id: str
    status: str
    agent_id: str | None
    attempts: int
    error: str | None = None
    error_code: str | None = None


# A task that failed or timed out ends its run as failed, with this error type and the TaskWorkflowResult
# as the failure's details (task_result_of_failure reads it back, e.g. in a chain or plan).
TASK_FAILURE_TYPES = {"failed": "TaskFailed", "timed_out": "TaskTimedOut"}


def task_result_of_failure(details: Sequence[Any]) -> TaskWorkflowResult | None:
    """The TaskWorkflowResult a failed task run carries, or None for any other failure."""
    if not details:
        return None
    try:
        return TaskWorkflowResult.model_validate(details[0])
    except ValueError:
        return None


class DependencyState(BaseModel):
    """Where a task's dependencies stand: all succeeded, some still running, or one that did not succeed."""

    pending: list[str]
    failed: str | None = None
    failed_status: str | None = None


class DependentsRequest(BaseModel):
    task_id: str


class BatchInput(BaseModel):
    """What a BatchWorkflow starts: the rows of ``batch_id`` (read from the registry in pages), plus earlier tasks.

    Compact whatever the batch holds: ids only, never the tasks themselves.
    """

    batch_id: str
    # Legacy: batches accepted before the rows were read from the registry carried every task's input.
    tasks: list[TaskWorkflowInput] = []
    # How many rows the request writes under ``batch_id`` (after starting this workflow, then signalling).
    new_tasks: int = 0
    # Tasks of earlier requests named again by idempotency key: their workflows are made sure to run.
    existing_task_ids: list[str] = []
    # Without the API's signal, the registry is read this long after the start (the API died after its commit).
    record_wait_seconds: float = 30.0


class BatchPage(BaseModel):
    """One page of a batch to start: ``limit`` rows of the batch from ``offset``, or the given ``task_ids``."""

    batch_id: str
    offset: int = 0
    limit: int = 0
    task_ids: list[str] = []


class BatchPageResult(BaseModel):
    loaded: int
    started: int


class CompositionStep(BaseModel):
    name: str
    depends_on: list[str]
    on_failure: str = "stop"
    pass_output: bool = False


class CompositionResume(BaseModel):
    """What a CompositionWorkflow run hands to the run it continues as: step states (ids, never outputs)."""

    run: int  # the number of the run that starts with this (the first run is 1)
    # Every step that is no longer pending: {"status", "task_id", "reason"}; outputs stay in the registry DB.
    steps: dict[str, dict[str, str | None]]
    last_output: str | None = None  # chain: the step whose output flows on
    last_error: str | None = None


class CompositionInput(BaseModel):
    composition_id: str
    kind: str  # "chain" or "plan"
    client_id: str
    steps: list[CompositionStep]
    # Continue-as-new: once a run has started this many steps (0: no such limit), or its history has this many
    # events, or Temporal suggests it, the run starts no more steps, waits for its running ones, and continues.
    steps_per_run: int = 0
    max_history_events: int = 10_000
    resume: CompositionResume | None = None


class PrepareStepRequest(BaseModel):
    composition_id: str
    step: str
    # Finished steps whose outputs this step may use: step name -> task id.
    outputs_from: dict[str, str]
    previous: str | None = None  # chain: the step whose output is merged into this input
    previous_error: str | None = None


class PreparedStep(BaseModel):
    task: TaskWorkflowInput | None = None
    error: str | None = None  # the step cannot run (e.g. a reference that does not resolve)


class CompositionState(BaseModel):
    composition_id: str
    status: str
    steps: dict[str, dict[str, str | None]]
