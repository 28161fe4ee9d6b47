"""CompositionWorkflow: run a chain or a plan, each step a child TaskWorkflow.

Ready steps (every dependency finished as required) start together, so independent branches of a plan
run in parallel. When a plan step fails, its dependents are skipped with the reason and other branches
go on; a chain applies the step's failure policy. Cancelling the composition cancels running steps.
Payloads stay small: steps' outputs stay in the registry DB and are read when the next step is prepared.

Long compositions continue as new: once a run has started ``steps_per_run`` steps, or its history reaches
``max_history_events`` events, or Temporal suggests it, the run starts no further step, waits until its
running steps have finished, and continues as new carrying only step states (names, statuses, task ids).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, ChildWorkflowError, WorkflowAlreadyStartedError

with workflow.unsafe.imports_passed_through():
    from ains.activities.compositions import CompositionActivities
    from ains.models.contract import COMPOSITION_WORKFLOW_NAME, task_start_options
    from ains.models.workflow_io import (
        TASK_FAILURE_TYPES,
        CompositionInput,
        CompositionResume,
        CompositionState,
        CompositionStep,
        PrepareStepRequest,
        TaskWorkflowInput,
        TaskWorkflowResult,
        task_result_of_failure,
    )
    from ains.workflows.task_workflow import TaskWorkflow

BOOKKEEPING_TIMEOUT = timedelta(seconds=30)
BOOKKEEPING_SCHEDULE_TO_CLOSE = timedelta(minutes=30)
BOOKKEEPING_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=10))
# Runs recorded before continue-as-new existed replay without it (no marker in their history).
CONTINUE_AS_NEW_PATCH = "ains-composition-continue-as-new"
_CONTINUE = "continue-as-new"  # what _execute returns when the run should hand over to a new run


@workflow.defn(name=COMPOSITION_WORKFLOW_NAME)
class CompositionWorkflow:
    def __init__(self) -> None:
        self._steps: dict[str, dict[str, str | None]] = {}
        self._last_output: str | None = None  # chain: the step whose output flows on
        self._last_error: str | None = None
        self._may_continue = False

    @workflow.query
    def steps(self) -> dict[str, dict[str, str | None]]:
        return self._steps

    @workflow.run
    async def run(self, params: CompositionInput) -> str:
        self._steps = {s.name: {"status": "pending", "task_id": None, "reason": None} for s in params.steps}
        if params.resume is not None:  # a continued run: the previous run's step states, no outputs
            for name, state in params.resume.steps.items():
                self._steps[name] = dict(state)
            self._last_output, self._last_error = params.resume.last_output, params.resume.last_error
        self._may_continue = workflow.patched(CONTINUE_AS_NEW_PATCH)
        running: dict[str, asyncio.Task[TaskWorkflowResult]] = {}
        try:
            status = await self._execute(params, running)
            if status == _CONTINUE:
                await self._save(params, "running")
                # No signal or update handlers today; should any be added, none may be cut off by the switch.
                await workflow.wait_condition(workflow.all_handlers_finished)
        except asyncio.CancelledError:
            for name, future in running.items():
                future.cancel()
                self._steps[name].update(status="cancelled", reason="the composition was cancelled")
            for state in self._steps.values():
                if state["status"] == "pending":
                    state.update(status="cancelled", reason="the composition was cancelled")
            await self._save(params, "cancelled")
            raise
        if status == _CONTINUE:
            run = params.resume.run + 1 if params.resume else 2
            workflow.logger.info("composition %s continues as new (run %d)", params.composition_id, run)
            workflow.continue_as_new(params.model_copy(update={"resume": self._resume(run)}))
        await self._save(params, status)
        return status

    def _resume(self, run: int) -> CompositionResume:
        return CompositionResume(
            run=run,
            steps={name: dict(state) for name, state in self._steps.items() if state["status"] != "pending"},
            last_output=self._last_output,
            last_error=self._last_error,
        )

    def _should_continue(self, params: CompositionInput, started: int) -> bool:
        """Whether this run should start no more steps and hand over to a new run.

        Only after this run started a step, so every run makes progress whatever the history looks like.
        """
        if not self._may_continue or started == 0:
            return False
        if params.steps_per_run and started >= params.steps_per_run:
            return True
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() >= params.max_history_events

    async def _execute(self, params: CompositionInput, running: dict[str, asyncio.Task[TaskWorkflowResult]]) -> str:
        """Run steps until the composition is over (its final status) or the run should continue as new.

        Before continuing as new, the run waits for its running steps to finish instead of handing them
        over: a child's result can only be awaited by the run that started it, and the children's parent
        close policy (REQUEST_CANCEL) cancels whatever is still running when a run closes, continue-as-new
        included. So no completion can be missed, and every running step belongs to the current run, which
        is the one a cancel reaches (the API cancels the workflow id, i.e. its latest run) and which then
        cancels that step. A cancel or any other event arriving while the continue-as-new command is being
        sent makes Temporal reject the command and hand the event to this run first.
        """
        by_name = {s.name: s for s in params.steps}
        # Succeeded step -> its task id (carried over from earlier runs through the step states).
        outputs = {n: s["task_id"] for n, s in self._steps.items() if s["status"] == "succeeded" and s["task_id"]}
        started = 0
        draining = False
        while True:
            for step in params.steps:
                if draining:
                    break
                if self._steps[step.name]["status"] == "pending" and self._ready(step):
                    if self._should_continue(params, started):
                        draining = True
                        break
                    if await self._start(params, step, outputs, running):
                        started += 1
            if not running:
                ready = any(self._steps[s.name]["status"] == "pending" and self._ready(s) for s in params.steps)
                if draining and ready:
                    return _CONTINUE
                break
            await self._save(params, "running")
            done, _ = await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
            for name in [n for n, f in running.items() if f in done]:
                future = running.pop(name)
                result = self._outcome(future)
                state = self._steps[name]
                if result.status == "succeeded":
                    state.update(status="succeeded", reason=None)
                    outputs[name] = result.task_id
                    self._last_output, self._last_error = name, None
                    continue
                state.update(status="failed", reason=result.error or result.status)
                self._after_failure(params, by_name[name], result)
                if params.kind == "chain" and by_name[name].on_failure == "continue":
                    self._last_output, self._last_error = None, result.error or result.status
        statuses = [s["status"] for s in self._steps.values()]
        tolerated = {"succeeded", "failed_skipped", "failed_continued"}
        # A chain that only skipped or continued past failures succeeds if its last step did.
        if params.kind == "chain" and set(statuses) <= tolerated and statuses[-1] == "succeeded":
            return "succeeded"
        return "succeeded" if set(statuses) == {"succeeded"} else "failed"

    def _ready(self, step: CompositionStep) -> bool:
        deps = [self._steps[d]["status"] for d in step.depends_on]
        if any(s in ("pending", "running") for s in deps):
            return False
        # Chains: a step after a skipped (or continued) failure still runs; plans need every dependency.
        return all(s == "succeeded" or s in ("failed_skipped", "failed_continued") for s in deps)

    def _after_failure(self, params: CompositionInput, step: CompositionStep, result: TaskWorkflowResult) -> None:
        if params.kind == "chain" and step.on_failure in ("skip", "continue"):
            self._steps[step.name]["status"] = f"failed_{'skipped' if step.on_failure == 'skip' else 'continued'}"
            return
        reason = f"dependency {step.name} failed" if params.kind == "plan" else f"the chain stopped at {step.name}"
        blocked = {step.name}
        changed = True
        while changed:  # transitive dependents
            changed = False
            for other in params.steps:
                if other.name not in blocked and blocked & set(other.depends_on):
                    blocked.add(other.name)
                    changed = True
                    if self._steps[other.name]["status"] == "pending":
                        self._steps[other.name].update(status="skipped", reason=reason)

    async def _start(
        self,
        params: CompositionInput,
        step: CompositionStep,
        outputs: dict[str, str],
        running: dict[str, asyncio.Task[TaskWorkflowResult]],
    ) -> bool:
        """Prepare the step and start its child; False when the step cannot run (it is marked failed)."""
        is_chain = params.kind == "chain"
        prepared = await workflow.execute_local_activity_method(
            CompositionActivities.prepare_step,
            PrepareStepRequest(
                composition_id=params.composition_id,
                step=step.name,
                outputs_from=dict(outputs),
                previous=self._last_output if is_chain and step.pass_output else None,
                previous_error=self._last_error if is_chain else None,
            ),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            schedule_to_close_timeout=BOOKKEEPING_SCHEDULE_TO_CLOSE,
            retry_policy=BOOKKEEPING_RETRY,
        )
        state = self._steps[step.name]
        if prepared.task is None:
            state.update(status="failed", reason=prepared.error)
            self._after_failure(
                params, step, TaskWorkflowResult(task_id="", status="failed", agent_id=None, attempts=0)
            )
            return False
        state.update(status="running", task_id=prepared.task.task_id)
        running[step.name] = asyncio.ensure_future(self._run_child(prepared.task))
        return True

    async def _run_child(self, task: TaskWorkflowInput) -> TaskWorkflowResult:
        try:
            return await workflow.execute_child_workflow(
                TaskWorkflow.run,
                task,
                # Cancelled (not terminated) with the composition, so each step records its own cancellation.
                parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
                **task_start_options(task),
            )
        except WorkflowAlreadyStartedError:  # the step's task id was used before; never run a task twice
            return TaskWorkflowResult(
                task_id=task.task_id, status="failed", agent_id=None, attempts=0, error="duplicate step"
            )
        except ChildWorkflowError as err:
            if isinstance(err.cause, ApplicationError) and err.cause.type in TASK_FAILURE_TYPES.values():
                carried = task_result_of_failure(err.cause.details)
                if carried is not None:  # the task failed or timed out: its own result, as before
                    return carried
            status = "cancelled" if "cancel" in str(err.cause).lower() else "failed"
            return TaskWorkflowResult(
                task_id=task.task_id, status=status, agent_id=None, attempts=0, error=str(err.cause or err)
            )

    @staticmethod
    def _outcome(future: asyncio.Task[Any]) -> TaskWorkflowResult:
        result: TaskWorkflowResult = future.result()
        return result

    async def _save(self, params: CompositionInput, status: str) -> None:
        public = {
            name: {**state, "status": "failed" if str(state["status"]).startswith("failed_") else state["status"]}
            for name, state in self._steps.items()
        }
        await workflow.execute_local_activity_method(
            CompositionActivities.save_composition_state,
            CompositionState(composition_id=params.composition_id, status=status, steps=public),
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            schedule_to_close_timeout=BOOKKEEPING_SCHEDULE_TO_CLOSE,
            retry_policy=BOOKKEEPING_RETRY,
        )
