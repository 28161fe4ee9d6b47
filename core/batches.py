"""Batches: up to 1,000 tasks validated together, recorded in one transaction, started by one workflow.

All-or-nothing: every item is checked (schema, limits, templates, dependencies, idempotency conflicts)
before anything is written; problems come back per item. The rows are written at once so every task is
readable immediately, and one ``BatchWorkflow`` starts the task workflows as its children — a single
Temporal start on the request path, and nothing is lost if the API dies right after answering.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from temporalio.client import Client
from temporalio.service import RPCError

from core.db import Database
from core.errors import AinsError, Conflict, InvalidInput, Unavailable
from core.settings import ORCHESTRATION_QUEUE, Settings
from core.tasks import Parent, accepted, build_task, owned_task_ids, prepare_spec, workflow_input
from core.templates import count_use
from models.tables import Task, TaskDependency
from models.tasks import TaskBatchAccepted, TaskBatchCreate, TaskCreate
from models.workflow_io import BatchInput

BATCH_WORKFLOW_NAME = "BatchWorkflow"
BATCH_EXECUTION_TIMEOUT = timedelta(hours=1)


class BatchInvalid(InvalidInput):
    """Some items are invalid; ``problems`` maps item index to the reason."""

    def __init__(self, problems: dict[int, str]) -> None:
        listed = "; ".join(f"tasks[{i}]: {msg}" for i, msg in sorted(problems.items())[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        super().__init__(f"{len(problems)} of the tasks are invalid, none was started: {listed}{more}")
        self.problems = problems
        self.details = [{"index": i, "msg": msg} for i, msg in sorted(problems.items())]


async def submit_batch(
    db: Database, temporal: Client, settings: Settings, client_id: str, batch: TaskBatchCreate
) -> TaskBatchAccepted:
    keys = Counter(t.idempotency_key for t in batch.tasks if t.idempotency_key)
    problems: dict[int, str] = {
        i: f"idempotency key {t.idempotency_key!r} appears more than once in the batch"
        for i, t in enumerate(batch.tasks)
        if t.idempotency_key and keys[t.idempotency_key] > 1
    }
    prepared: list[tuple[TaskCreate, Task]] = []
    async with db.session() as session:
        wanted = sorted({d for t in batch.tasks for d in t.depends_on})
        owned = await owned_task_ids(session, client_id, wanted)
        for index, item in enumerate(batch.tasks):
            unknown = [d for d in item.depends_on if d not in owned]
            if unknown:
                problems[index] = f"depends_on names unknown task(s): {', '.join(unknown)}"
                continue
            try:
                spec = await prepare_spec(session, settings, client_id, item)
                prepared.append((spec, build_task(settings, client_id, spec)))
            except AinsError as exc:
                problems[index] = exc.message
        existing = {
            row.id: row
            for row in (await session.execute(select(Task).where(Task.id.in_([t.id for _, t in prepared])))).scalars()
        }
    for index, (spec, task) in enumerate(prepared):
        old = existing.get(task.id)
        if old is not None and old.request_hash != task.request_hash:
            problems[index] = f"idempotency key {spec.idempotency_key!r} was already used for a different request"
    if problems:
        raise BatchInvalid(problems)

    batch_id = f"bat_{uuid.uuid4().hex}"
    new = [(spec, task) for spec, task in prepared if task.id not in existing]
    try:
        async with db.transaction() as session:
            for _, task in new:
                task.parent_id = batch_id
            session.add_all(task for _, task in new)
            await session.flush()
            session.add_all(
                TaskDependency(task_id=task.id, depends_on_id=dep) for spec, task in new for dep in spec.depends_on
            )
            for spec, _ in new:
                if spec.template_id:
                    await count_use(session, spec.template_id)
    except IntegrityError as exc:
        raise Conflict("a concurrent request submitted some of these idempotency keys; retry the batch") from exc

    rows = [existing.get(task.id, task) for _, task in prepared]
    inputs = [workflow_input(row, settings, spec.depends_on) for (spec, _), row in zip(prepared, rows, strict=True)]
    workflow_id = f"batch-{batch_id}"
    try:
        await temporal.start_workflow(
            BATCH_WORKFLOW_NAME,
            BatchInput(batch_id=batch_id, tasks=inputs),
            id=workflow_id,
            task_queue=ORCHESTRATION_QUEUE,
            execution_timeout=BATCH_EXECUTION_TIMEOUT,
            static_summary=f"batch of {len(inputs)} task(s)",
        )
    except RPCError as exc:
        raise Unavailable(
            f"Temporal is unreachable, the batch was recorded but not started; resubmit it with the same "
            f"idempotency keys: {exc.message}"
        ) from exc
    created = {task.id for _, task in new}
    return TaskBatchAccepted(
        batch_id=batch_id,
        workflow_id=workflow_id,
        temporal_ui_url=settings.workflow_ui_link(workflow_id),
        tasks=[accepted(row, settings, row.id in created) for row in rows],
    )


__all__ = ["BatchInvalid", "Parent", "submit_batch"]
