"""Registry rows written straight to the database, for tests that drive workers or routing without the API."""

from __future__ import annotations

from ains.models.tables import Task


def task_row(
    task_id: str,
    capabilities: list[str],
    *,
    client_id: str = "c",
    status: str = "pending",
    timeout_seconds: int = 60,
    max_attempts: int = 3,
) -> Task:
    """A minimal echo task, as the API would have recorded it, with the usual ``task-<id>`` workflow id."""
    return Task(
        id=task_id,
        client_id=client_id,
        type="echo",
        input={},
        required_capabilities=capabilities,
        timeout_seconds=timeout_seconds,
        max_attempts=max_attempts,
        status=status,
        workflow_id=f"task-{task_id}",
    )
