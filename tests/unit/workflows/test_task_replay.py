"""TaskWorkflow histories recorded by earlier versions still replay (tasks in flight survive a deploy)."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from ains.workflows.task_workflow import TaskWorkflow

HISTORIES = Path(__file__).parent / "histories"
# Recorded with the polling TaskWorkflow (route, poll while busy, record, wake, notify, emit as separate steps).
V1 = [
    "task_one_attempt_v1.json",
    "task_waited_for_agent_v1.json",
    "task_woke_a_waiting_task_v1.json",
    "task_rerouted_v1.json",
    "task_cancelled_while_waiting_v1.json",
]


# Recorded with the hand-over TaskWorkflow behind the ains-handover-dispatch patch (route and finish as local
# activities around the call, search attributes upserted when the call starts and when the task ends).
V2 = [
    "task_one_attempt_v2.json",
    "task_handed_over_v2.json",
    "task_handed_over_its_slot_v2.json",
    "task_cancelled_while_waiting_v2.json",
    "task_retried_v2.json",
    "task_failed_v2.json",
    "task_with_dependency_v2.json",
]

# Recorded with the one-step TaskWorkflow (history_version 3): a batch task queued ahead of its run, whose run was
# started delayed and then by its hand-over (SignalWithStart, the assignment as the first signal).
V3 = [
    "task_queued_ahead_v3.json",
    # A measured fast agent called inline (a local activity, no activity task), and an inline call that outlasted
    # INLINE_CALL_LIMIT and was delivered again through the queue.
    "task_called_inline_v3.json",
    "task_inline_call_past_its_limit_v3.json",
]

# Recorded with history_version 4 (ROUTED_CALLS): routing and an inline call in one local activity
# (route_and_call); a call through the queue for an agent not measured yet, an inline try past INLINE_CALL_LIMIT
# (routed again, then the queue), and a task that found its agent busy and was handed a slot by signal.
V4 = [
    "task_routed_then_called_through_the_queue_v4.json",
    "task_routed_and_called_inline_v4.json",
    "task_inline_call_past_its_limit_v4.json",
    "task_handed_over_v4.json",
]


# Workers run workflows unsandboxed in production (AINS_WORKFLOW_SANDBOX, off by default) and sandboxed in the
# test suite: every history replays the same under both runners.
RUNNERS = {"sandboxed": SandboxedWorkflowRunner, "unsandboxed": UnsandboxedWorkflowRunner}


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("name", V1 + V2 + V3 + V4)
async def test_a_task_recorded_by_an_earlier_workflow_version_replays(name: str, runner: str) -> None:
    history = WorkflowHistory.from_json(f"task-{name}", (HISTORIES / name).read_text())
    replayer = Replayer(
        workflows=[TaskWorkflow], data_converter=pydantic_data_converter, workflow_runner=RUNNERS[runner]()
    )
    await replayer.replay_workflow(history)
