"""Batches: up to 1,000 tasks validated together, recorded in one transaction, started by one workflow.

All-or-nothing: every item is checked (schema, limits, templates, dependencies, callback URLs, idempotency
conflicts) before anything is written, with a fixed number of queries whatever the batch holds; problems come
back per item. The rows are then written with bulk inserts in one transaction, so every task is readable
(``pending``) as soon as the request is answered.

One ``BatchWorkflow`` (input: ids only) starts the task workflows. It is started while the rows are being
inserted and the transaction commits only once it exists; the API then signals it that the rows are
committed. So nothing accepted is lost: if the API dies after the commit, the workflow reads the rows from
the registry on its own once its wait for the signal runs out. If Temporal cannot be reached, nothing is
recorded (503) and the batch can simply be sent again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any, cast

import asyncpg
from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from ains.core.composition.templates import apply as apply_template
from ains.core.composition.templates import count_uses, load_owned
from ains.core.platform.db import Database, asyncpg_in_transaction
from ains.core.platform.errors import AinsError, Conflict, InvalidInput, Unavailable
from ains.core.platform.idempotency import key_reused
from ains.core.platform.settings import Settings
from ains.core.platform.url_safety import UrlPolicy, check_url
from ains.core.tasks.service import Parent, owned_task_ids, task_values, validate_limits
from ains.models.contract import BATCH_RECORDED_SIGNAL, BATCH_WORKFLOW_NAME, ORCHESTRATION_QUEUE
from ains.models.tables import Task, TaskDependency, utcnow
from ains.models.tasks import TaskAccepted, TaskBatchAccepted, TaskBatchCreate, TaskCreate, TaskStatus
from ains.models.workflow_io import BatchInput

BATCH_EXECUTION_TIMEOUT = timedelta(hours=1)
# How long the batch workflow waits for the API's word on the commit before it reads the registry itself.
RECORD_WAIT_SECONDS = 30.0

log = logging.getLogger("ains.batches")
# Core tables: bulk inserts of plain dicts, no ORM objects to build.
TASKS = cast(Table, Task.__table__)
TASK_DEPENDENCIES = cast(Table, TaskDependency.__table__)


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
    problems: dict[int, str] = {}
    specs = await _prepare(db, settings, client_id, batch.tasks, problems)
    rows = {index: task_values(settings, client_id, spec) for index, spec in specs.items()}
    existing = await _existing(db, [row["id"] for row in rows.values() if row["idempotency_key"] is not None])
    for index, row in rows.items():
        old = existing.get(row["id"])
        if old is not None and old[0] != row["request_hash"]:
            problems[index] = key_reused(row["idempotency_key"])
    if problems:
        raise BatchInvalid(problems)

    batch_id = f"bat_{uuid.uuid4().hex}"
    workflow_id = f"batch-{batch_id}"
    new = [(specs[index], row) for index, row in rows.items() if row["id"] not in existing]
    # One timestamp per batch, a microsecond apart: listings (newest first) keep the items' order.
    now = utcnow()
    for position, (_, row) in enumerate(new):
        row["parent_id"] = batch_id
        row["created_at"] = row["updated_at"] = now + timedelta(microseconds=position)
    existing_ids = list(dict.fromkeys(row["id"] for row in rows.values() if row["id"] in existing))
    start = BatchInput(
        batch_id=batch_id, new_tasks=len(new), existing_task_ids=existing_ids, record_wait_seconds=RECORD_WAIT_SECONDS
    )
    if new:
        await _record_and_start(db, temporal, workflow_id, start, new)
    else:
        await _start_workflow(temporal, workflow_id, start)

    link = settings.workflow_ui_link
    return TaskBatchAccepted(
        batch_id=batch_id,
        workflow_id=workflow_id,
        temporal_ui_url=link(workflow_id),
        tasks=[
            TaskAccepted.model_construct(
                id=row["id"],
                status=TaskStatus(existing[row["id"]][1] if row["id"] in existing else row["status"]),
                workflow_id=row["workflow_id"],
                temporal_ui_url=link(row["workflow_id"]),
                created=row["id"] not in existing,
            )
            for row in rows.values()
        ],
    )


async def _prepare(
    db: Database, settings: Settings, client_id: str, items: list[TaskCreate], problems: dict[int, str]
) -> dict[int, TaskCreate]:
    """Every valid item with its template applied, by index; the others' reasons go to ``problems``."""
    keys = Counter(t.idempotency_key for t in items if t.idempotency_key)
    for index, item in enumerate(items):
        if item.idempotency_key and keys[item.idempotency_key] > 1:
            problems[index] = f"idempotency key {item.idempotency_key!r} appears more than once in the batch"
    async with db.session() as session:
        templates = await load_owned(session, client_id, (t.template_id for t in items if t.template_id))
        owned = await owned_task_ids(session, client_id, sorted({d for t in items for d in t.depends_on}))
    specs: dict[int, TaskCreate] = {}
    for index, item in enumerate(items):
        if index in problems:
            continue
        unknown = [d for d in item.depends_on if d not in owned]
        if unknown:
            problems[index] = f"depends_on names unknown task(s): {', '.join(unknown)}"
            continue
        try:
            spec = apply_template(templates.get(item.template_id or ""), client_id, item)
            validate_limits(spec, settings)
        except AinsError as exc:
            problems[index] = exc.message
            continue
        specs[index] = spec
    # Each distinct callback URL is checked once (its host may need a DNS lookup), all at the same time.
    urls = sorted({str(spec.callback_url) for spec in specs.values() if spec.callback_url is not None})
    if urls:
        policy = UrlPolicy.from_settings(settings)
        outcomes = await asyncio.gather(*(check_url(url, policy) for url in urls), return_exceptions=True)
        refused: dict[str, str] = {}
        for url, outcome in zip(urls, outcomes, strict=True):
            if isinstance(outcome, AinsError):
                refused[url] = outcome.message
            elif isinstance(outcome, BaseException):
                raise outcome
        for index, spec in list(specs.items()):
            if spec.callback_url is not None and str(spec.callback_url) in refused:
                problems[index] = refused[str(spec.callback_url)]
                del specs[index]
    return specs


async def _existing(db: Database, task_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Request hash and status of the rows that already exist among ``task_ids`` (idempotency keys), one query."""
    if not task_ids:
        return {}
    async with db.session() as session:
        found = await session.execute(select(Task.id, Task.request_hash, Task.status).where(Task.id.in_(task_ids)))
        return {task_id: (request_hash, status) for task_id, request_hash, status in found.tuples()}


async def _record_and_start(
    db: Database,
    temporal: Client,
    workflow_id: str,
    start: BatchInput,
    new: list[tuple[TaskCreate, dict[str, Any]]],
) -> None:
    """Insert the rows and start the workflow at the same time; commit only once the workflow exists."""
    starting: asyncio.Task[WorkflowHandle[Any, Any]] | None = None
    committing = False
    try:
        async with db.transaction() as session:
            starting = asyncio.create_task(_start_workflow(temporal, workflow_id, start))
            try:
                await _insert(session, new)
            finally:
                await asyncio.wait([starting])
            handle = starting.result()  # Unavailable here rolls the rows back: nothing is recorded
            committing = True
    except BaseException as exc:
        started = starting is not None and starting.done() and not starting.cancelled() and not starting.exception()
        if started and not committing:  # the rows were certainly rolled back: the workflow can stop now
            assert starting is not None
            await _tell(starting.result(), committed=False)
        # Once the commit was attempted its outcome may be unknown: the workflow reads the registry itself.
        if isinstance(exc, IntegrityError):
            raise Conflict("a concurrent request submitted some of these idempotency keys; retry the batch") from exc
        raise
    await _tell(handle, committed=True)


async def _insert(session: AsyncSession, new: list[tuple[TaskCreate, dict[str, Any]]]) -> None:
    """The rows, their dependencies and their templates' use counts: one statement each."""
    await _bulk_insert(session, TASKS, [row for _, row in new])
    edges = [{"task_id": row["id"], "depends_on_id": dep} for spec, row in new for dep in spec.depends_on]
    if edges:
        await _bulk_insert(session, TASK_DEPENDENCIES, edges)
    await count_uses(session, Counter(spec.template_id for spec, _ in new if spec.template_id))


async def _bulk_insert(session: AsyncSession, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert plain dict rows: COPY on Postgres (asyncpg), an executemany INSERT elsewhere.

    Columns a row leaves out get their scalar default (or NULL) as with the ORM; values are encoded by the
    columns' own types (JSON, timestamps), so what is stored is what an INSERT would store.
    """
    conn = await session.connection()
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "asyncpg":
        await session.execute(insert(table), rows)
        return
    columns = list(table.columns)
    defaults = [
        getattr(column.default, "arg", None) if column.default is not None and column.default.is_scalar else None
        for column in columns
    ]
    encoders = [column.type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for column in columns]
    plan = list(zip([column.name for column in columns], defaults, encoders, strict=True))
    records = [
        tuple(
            (encode(row[name]) if encode is not None else row[name]) if name in row else default
            for name, default, encode in plan
        )
        for row in rows
    ]
    raw = await asyncpg_in_transaction(conn)  # without it, COPY would autocommit
    try:
        await raw.copy_records_to_table(table.name, records=records, columns=[name for name, _, _ in plan])
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(f"COPY {table.name}", None, exc) from exc


async def _start_workflow(temporal: Client, workflow_id: str, start: BatchInput) -> WorkflowHandle[Any, Any]:
    try:
        return await temporal.start_workflow(
            BATCH_WORKFLOW_NAME,
            start,
            id=workflow_id,
            task_queue=ORCHESTRATION_QUEUE,
            execution_timeout=BATCH_EXECUTION_TIMEOUT,
            static_summary=f"batch of {start.new_tasks + len(start.existing_task_ids)} task(s)",
        )
    except RPCError as exc:
        raise Unavailable(
            f"Temporal is unreachable, nothing was recorded; send the batch again: {exc.message}"
        ) from exc


async def _tell(handle: WorkflowHandle[Any, Any], *, committed: bool) -> None:
    """Best effort: without the signal the workflow reads the registry once its wait runs out."""
    try:
        await handle.signal(BATCH_RECORDED_SIGNAL, committed)
    except RPCError as exc:
        log.warning("could not signal %s (committed=%s): %s", handle.id, committed, exc.message)


__all__ = ["BatchInvalid", "Parent", "submit_batch"]
