"""A complete AINS stack for end-to-end tests: registry DB, real API server, real workers, one namespace.

Each backend gets its own Temporal namespace so stacks never pick up each other's tasks.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from temporalio.client import Client

from ains.api.app import create_app
from ains.core.platform.db import Database
from ains.core.platform.settings import Settings
from ains.core.platform.temporal import connect
from ains.models.keys import Scope
from ains.workers.child_processes import die_with_parent
from ains.workers.worker import resolve_queues, run_workers
from tests.support import factories
from tests.support.servers import RunningServer, serve

SIGNING_SECRET = "test-signing-secret"
CALLBACK_SECRET = "test-callback-secret"
UI_SESSION_SECRET = "test-ui-session-secret"
FINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def stack_settings(database_url: str, temporal_address: str, namespace: str, redis_url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        temporal_address=temporal_address,
        temporal_namespace=namespace,
        agent_signing_secret=SIGNING_SECRET,
        agent_heartbeat_interval_seconds=0.5,
        agent_heartbeat_timeout_seconds=2.0,
        retry_backoff_seconds=0.1,
        no_agent_wait_seconds=3.0,
        worker_sticky_timeout_seconds=1.0,
        workflow_sandbox=True,  # every workflow path the suite runs is checked by Temporal's sandbox
        priority_aging_seconds=1.0,
        dispatch_reconcile_interval_seconds=2.0,
        dispatch_reconcile_after_seconds=1.0,
        worker_shutdown_grace_seconds=1.0,
        worker_metrics_port=0,
        max_task_input_bytes=4096,
        max_request_bytes=1_048_576,
        max_timeout_seconds=600,
        webhook_retry_period_seconds=2.5,
        webhook_initial_backoff_seconds=0.2,
        webhook_max_backoff_seconds=1.0,
        webhook_request_timeout_seconds=2.0,
        callback_signing_secret=CALLBACK_SECRET,
        ui_session_secret=UI_SESSION_SECRET,
    )


@dataclass
class Stack:
    backend: str
    settings: Settings
    db: Database
    api: RunningServer
    demo_url: str
    admin_key: str
    http: httpx.AsyncClient
    _worker_stop: asyncio.Event | None = None
    _worker_task: asyncio.Task[None] | None = None
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return self.api.url

    async def temporal(self) -> Client:
        return await connect(self.settings)

    # --- workers -------------------------------------------------------------------------------
    async def start_worker(self) -> None:
        assert self._worker_task is None, "in-process worker already running"
        self._worker_stop = asyncio.Event()
        self._worker_task = asyncio.create_task(run_workers(self.settings, resolve_queues(["all"]), self._worker_stop))
        await asyncio.sleep(0.2)
        if self._worker_task.done():
            self._worker_task.result()

    async def stop_worker(self) -> None:
        if self._worker_task is None or self._worker_stop is None:
            return
        self._worker_stop.set()
        await asyncio.wait_for(self._worker_task, 30)
        self._worker_task = None

    def spawn_worker_process(self) -> subprocess.Popen[bytes]:
        """A real ``ains worker`` process on this stack's DB and namespace (for crash tests)."""
        env = {
            **os.environ,
            "AINS_DATABASE_URL": self.settings.effective_database_url,
            "AINS_TEMPORAL_ADDRESS": self.settings.temporal_address,
            "AINS_TEMPORAL_NAMESPACE": self.settings.temporal_namespace,
            "AINS_AGENT_SIGNING_SECRET": SIGNING_SECRET,
            "AINS_AGENT_HEARTBEAT_INTERVAL_SECONDS": "0.5",
            "AINS_WORKER_STICKY_TIMEOUT_SECONDS": "1",
            "AINS_WORKFLOW_SANDBOX": "true",
            "AINS_WORKER_SHUTDOWN_GRACE_SECONDS": "1",
            "AINS_WORKER_METRICS_PORT": "0",
            "AINS_PRIORITY_AGING_SECONDS": str(self.settings.priority_aging_seconds),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "ains.workers.cli", "worker", "--queue", "all"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=die_with_parent,
        )
        self._processes.append(process)
        return process

    # --- keys and agents -------------------------------------------------------------------------
    async def new_key(
        self, client_id: str | None = None, scopes: list[Scope] | None = None, **extra: Any
    ) -> tuple[str, str]:
        """A fresh key; returns (key, client_id)."""
        return await factories.new_key(self.db, client_id, scopes, **extra)

    async def register_agent(
        self, path: str = "/run", max_concurrency: int = 10, tag: str | None = None, **extra: Any
    ) -> tuple[str, str]:
        """Registers a demo-agent endpoint with a capability tag unique to the caller; returns (agent_id, tag)."""
        tag = tag or f"cap-{uuid.uuid4().hex[:10]}"
        agent_id = f"agent-{uuid.uuid4().hex[:10]}"
        response = await self.http.post(
            "/v1/agents",
            headers=auth(self.admin_key),
            json={
                "id": agent_id,
                "display_name": f"test agent {path}",
                "endpoint_url": f"{self.demo_url}{path}",
                "capabilities": [{"tag": tag, "version": "1.0"}],
                "max_concurrency": max_concurrency,
                **extra,
            },
        )
        assert response.status_code == 201, response.text
        return agent_id, tag

    async def mark_unavailable(self, agent_id: str) -> None:
        """Mark the agent unavailable and wait until every worker's routing snapshot has seen it (a snapshot
        may route to it for up to AINS_ROUTING_CACHE_TTL_SECONDS after the change, as documented)."""
        response = await self.http.patch(
            f"/v1/agents/{agent_id}", headers=auth(self.admin_key), json={"status": "unavailable"}
        )
        assert response.status_code == 200, response.text
        await asyncio.sleep(self.settings.routing_cache_ttl_seconds + 0.5)

    # --- tasks -----------------------------------------------------------------------------------
    async def submit(self, key: str, **body: Any) -> dict[str, Any]:
        body.setdefault("type", "echo")
        response = await self.http.post("/v1/tasks", headers=auth(key), json=body)
        assert response.status_code == 202, response.text
        data: dict[str, Any] = response.json()
        return data

    async def wait_for(
        self, key: str, task_id: str, statuses: set[str] | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Poll the task until its status is in ``statuses`` (default: any final status)."""
        wanted = statuses or FINAL
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                response = await self.http.get(f"/v1/tasks/{task_id}", headers=auth(key))
            except (httpx.RemoteProtocolError, httpx.ReadError):
                # A keep-alive connection the server closed (or reset) as it was reused: the GET is safe to repeat.
                continue
            assert response.status_code == 200, response.text
            last = response.json()
            if last["status"] in wanted:
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"task {task_id} did not reach {wanted} in {timeout}s; last: {last}")

    async def trust(self, agent_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/agents/{agent_id}/trust", headers=auth(self.admin_key))
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def close(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        await self.stop_worker()
        await self.http.aclose()
        await self.api.stop()
        await self.db.dispose()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def start_stack(backend: str, settings: Settings, demo_url: str) -> Stack:
    db = Database(settings.effective_database_url)
    admin = await factories.admin_key(db)
    api = await serve(create_app(settings))
    stack = Stack(
        backend=backend,
        settings=settings,
        db=db,
        api=api,
        demo_url=demo_url,
        admin_key=admin,
        http=httpx.AsyncClient(base_url=api.url, timeout=30),
    )
    await stack.start_worker()
    return stack
