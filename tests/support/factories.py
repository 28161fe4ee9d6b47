"""Rows the tests need again and again: written through the same core functions the API uses, or (``task_row``)
straight to the database for tests that drive workers or routing without the API."""

from __future__ import annotations

import uuid
from typing import Any

from ains.core.access.keys import create_key
from ains.core.agents import registry as agents
from ains.core.platform.db import Database
from ains.models.agents import AgentCreate, Capability
from ains.models.keys import ApiKeyCreate, Scope
from ains.models.tables import Task

CLIENT_SCOPES = [Scope.TASKS_READ, Scope.TASKS_WRITE, Scope.AGENTS_READ, Scope.AGENTS_WRITE]


async def new_key(
    db: Database, client_id: str | None = None, scopes: list[Scope] | None = None, **extra: Any
) -> tuple[str, str]:
    """A fresh API key of a new client (or ``client_id``); returns (key, client_id)."""
    client_id = client_id or f"client-{uuid.uuid4().hex[:8]}"
    spec = ApiKeyCreate(client_id=client_id, scopes=scopes or CLIENT_SCOPES, **extra)
    async with db.transaction() as session:
        created = await create_key(session, spec)
    return created.key, client_id


async def admin_key(db: Database) -> str:
    key, _ = await new_key(db, "admin", [Scope.ADMIN], name="test admin")
    return key


async def idle_agent(db: Database, agent_id: str, tag: str, max_concurrency: int = 1) -> None:
    """An HTTP agent offering ``tag`` 1.0 at a port nothing listens on: for routing and dispatch, never called."""
    spec = AgentCreate(
        id=agent_id,
        display_name=agent_id,
        endpoint_url=f"http://127.0.0.1:9/{agent_id}",  # type: ignore[arg-type]
        capabilities=[Capability(tag=tag, version="1.0")],
        max_concurrency=max_concurrency,
    )
    async with db.transaction() as session:
        await agents.register_agent(session, spec)


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
