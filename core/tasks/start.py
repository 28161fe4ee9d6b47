"""Starting a task's run idempotently, with the contract's start options (models.contract)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from ains.models.contract import TASK_WORKFLOW_NAME, task_start_options
from ains.models.workflow_io import TaskWorkflowInput


async def start_task_workflow(client: Client, params: TaskWorkflowInput) -> None:
    """Start the task's workflow once. Safe to call again for the same task: an existing or finished run is kept."""
    try:
        await client.start_workflow(
            TASK_WORKFLOW_NAME,
            params,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            **task_start_options(params),
        )
    except WorkflowAlreadyStartedError:
        pass
