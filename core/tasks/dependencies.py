"""Dependencies between tasks submitted separately: where they stand, and who waits on a finished task."""

from __future__ import annotations

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from ains.models.tables import Task, TaskDependency
from ains.models.tasks import TaskStatus
from ains.models.workflow_io import DependencyState


async def dependency_state(session: AsyncSession, task_id: str) -> DependencyState:
    rows = await session.execute(
        select(Task.id, Task.status)
        .join(TaskDependency, TaskDependency.depends_on_id == Task.id)
        .where(TaskDependency.task_id == task_id)
        .order_by(Task.id)
    )
    pending: list[str] = []
    for dep_id, status in rows:
        if not TaskStatus(status).is_final:
            pending.append(dep_id)
        elif status != TaskStatus.SUCCEEDED.value:
            return DependencyState(pending=pending, failed=dep_id, failed_status=status)
    return DependencyState(pending=pending)


_DEPENDENTS = (
    select(Task.workflow_id, Task.status)
    .join(TaskDependency, TaskDependency.task_id == Task.id)
    .where(TaskDependency.depends_on_id == bindparam("b_task"))
)


async def waiting_dependents(session: AsyncSession, task_id: str) -> list[str]:
    """Workflow ids of unfinished tasks that depend on ``task_id`` (run once per finished task)."""
    rows = await session.execute(_DEPENDENTS, {"b_task": task_id})
    return [workflow_id for workflow_id, status in rows if not TaskStatus(status).is_final]


async def dependencies_of(session: AsyncSession, task_ids: list[str]) -> dict[str, list[str]]:
    """What each of these tasks depends on (tasks without dependencies are left out)."""
    if not task_ids:
        return {}
    rows = await session.execute(
        select(TaskDependency.task_id, TaskDependency.depends_on_id)
        .where(TaskDependency.task_id.in_(task_ids))
        .order_by(TaskDependency.task_id, TaskDependency.depends_on_id)
    )
    found: dict[str, list[str]] = {}
    for task_id, depends_on_id in rows:
        found.setdefault(task_id, []).append(depends_on_id)
    return found
