"""Status changes of one task as they happen, for ``GET /v1/tasks/{id}/events`` (server-sent events).

A light poll of the registry: every ``task_events_poll_seconds`` one narrow read of the fields a status
change touches (status, reason, agent, attempts, updated_at); the full task is read and sent only when one of
them changed. The stream starts with the task as it is now and ends after its final status, so a client that
reconnects never misses the outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

from sqlalchemy import select

from ains.core.platform.db import Database
from ains.core.platform.settings import Settings
from ains.core.tasks.service import get_task
from ains.models.tables import Task
from ains.models.tasks import TaskView


async def _fingerprint(db: Database, task_id: str) -> tuple[Any, ...] | None:
    async with db.session() as session:
        row = (
            await session.execute(
                select(Task.status, Task.status_reason, Task.assigned_agent_id, Task.attempts, Task.updated_at).where(
                    Task.id == task_id
                )
            )
        ).one_or_none()
    return None if row is None else tuple(row)


async def watch_task(
    db: Database, settings: Settings, task_id: str, client_id: str | None, timeout_seconds: float | None = None
) -> AsyncGenerator[TaskView | None, None]:
    """Yield the task now, then each time its status, reason, agent or attempts change, until it is final (or
    ``timeout_seconds`` have passed). Yields None when nothing changed for ``task_events_ping_seconds`` (the
    caller sends a keep-alive). Raises ``NotFound`` (another client's task, too) before yielding anything."""
    # The fingerprint is read before the task, so a change in between is seen at the next poll, never missed.
    last = await _fingerprint(db, task_id)
    async with db.session() as session:
        sent = await get_task(session, settings, task_id, client_id)
    yield sent
    if sent.status.is_final:
        return
    quiet_since = started = time.monotonic()
    while True:
        if timeout_seconds is not None:
            left = timeout_seconds - (time.monotonic() - started)
            if left <= 0:
                return
            await asyncio.sleep(min(settings.task_events_poll_seconds, left))
        else:
            await asyncio.sleep(settings.task_events_poll_seconds)
        current = await _fingerprint(db, task_id)
        if current is None:  # deleted with its client's data: nothing more will happen
            return
        if current != last:
            last = current
            quiet_since = time.monotonic()
            async with db.session() as session:
                view = await get_task(session, settings, task_id, client_id)
            if view != sent:
                sent = view
                yield view
            if view.status.is_final:
                return
        elif time.monotonic() - quiet_since >= settings.task_events_ping_seconds:
            quiet_since = time.monotonic()
            yield None
