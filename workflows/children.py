"""Options for starting a task's TaskWorkflow as a child (of a batch, chain or plan)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import WorkflowIDReusePolicy

from core.settings import ORCHESTRATION_QUEUE
from models import search_attributes as sa
from models.priority import task_queue_priority
from models.workflow_io import TaskWorkflowInput

TASK_EXECUTION_TIMEOUT = timedelta(days=2)


def task_child_options(task: TaskWorkflowInput) -> dict[str, Any]:
    """Same id, queue, priority and search attributes as a task started directly through the API."""
    return {
        "id": f"task-{task.task_id}",
        "task_queue": ORCHESTRATION_QUEUE,
        "id_reuse_policy": WorkflowIDReusePolicy.REJECT_DUPLICATE,
        "execution_timeout": TASK_EXECUTION_TIMEOUT,
        "priority": task_queue_priority(task.priority, task.client_id),
        "search_attributes": sa.new_task_attributes(task.client_id, task.task_type, task.priority),
        "static_summary": f"{task.task_type} task {task.task_id} (priority {task.priority})",
    }
