"""The Temporal contract every AINS process shares: task queue names, workflow and signal names, and how a task's
run is started (one set of start options, whoever starts it).

The API (a task submitted on its own), the batch activity, batch and composition workflows (children), the
dispatcher (a hand-over that starts the run of a task queued ahead of it) and the schedules all start task
workflows with ``task_start_options``. Deterministic and free of I/O, so workflows import it too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import WorkflowIDReusePolicy

from ains.models import search_attributes as sa
from ains.models.priority import task_queue_priority
from ains.models.workflow_io import TaskWorkflowInput

# Task queues served by separate worker pools; deploy/ has one Deployment and scaler per queue.
ORCHESTRATION_QUEUE = "ains-orchestration"
AGENTS_QUEUE = "ains-agents"
WEBHOOKS_QUEUE = "ains-webhooks"
LLM_QUEUE = "ains-llm"
ALL_QUEUES: dict[str, str] = {
    "orchestration": ORCHESTRATION_QUEUE,
    "agents": AGENTS_QUEUE,
    "webhooks": WEBHOOKS_QUEUE,
    "llm": LLM_QUEUE,
}

# Workflow types (each workflow's @workflow.defn name; starters and schedules name them by these).
TASK_WORKFLOW_NAME = "TaskWorkflow"
BATCH_WORKFLOW_NAME = "BatchWorkflow"
COMPOSITION_WORKFLOW_NAME = "CompositionWorkflow"
SCHEDULED_WORKFLOW_NAME = "ScheduledTaskWorkflow"
WEBHOOK_WORKFLOW_NAME = "WebhookDeliveryWorkflow"
HEALTH_WORKFLOW_NAME = "AgentHealthWorkflow"
RECONCILE_WORKFLOW_NAME = "DispatchReconcileWorkflow"

# Signals.
SLOT_ASSIGNED_SIGNAL = "slot_assigned"
DEPENDENCY_FINISHED_SIGNAL = "dependency_finished"
SLOT_FREED_SIGNAL = "slot_freed"  # polled runs recorded before hand-over dispatch
BATCH_RECORDED_SIGNAL = "batch_recorded"

# Bounds a task's whole life (all attempts, backoff and waiting for agents) so nothing runs forever.
TASK_EXECUTION_SLACK = timedelta(hours=1)
# A task that waits for other tasks cannot know how long they take; it is bounded like its longest peers.
DEPENDENCY_WAIT = timedelta(days=2)
# Backoff bound per attempt when a task has no retry policy of its own (the default doubles from its base).
DEFAULT_BACKOFF_FACTOR = 8


def task_workflow_id(task_id: str) -> str:
    return f"task-{task_id}"


def task_execution_timeout(task: TaskWorkflowInput) -> timedelta:
    """The attempts, the backoff between them and the longest wait for an agent, plus slack."""
    backoff = (
        task.retry.maximum_interval_seconds
        if task.retry is not None
        else task.policy.retry_backoff_seconds * DEFAULT_BACKOFF_FACTOR
    )
    timeout = timedelta(seconds=task.max_attempts * (task.timeout_seconds + backoff) + task.queue_wait_seconds())
    timeout += TASK_EXECUTION_SLACK
    return max(timeout, DEPENDENCY_WAIT) if task.depends_on else timeout


def task_start_options(task: TaskWorkflowInput) -> dict[str, Any]:
    """Id, queue, id policy, execution timeout, priority, search attributes and summary of a task's run."""
    return {
        "id": task_workflow_id(task.task_id),
        "task_queue": ORCHESTRATION_QUEUE,
        "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
        "execution_timeout": task_execution_timeout(task),
        "priority": task_queue_priority(task.priority, task.client_id),
        "search_attributes": sa.new_task_attributes(task.client_id, task.task_type, task.priority),
        "static_summary": f"{task.task_type} task {task.task_id} (priority {task.priority})",
    }
