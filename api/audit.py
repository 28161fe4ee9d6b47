"""Audit log middleware: every POST/PUT/PATCH/DELETE under /v1 made with a valid API key, and every dashboard
action under /ui made in a signed-in session, is recorded
(who: client and key id; what: method, route template, path, resource id, status; when; from where:
client IP and user agent; request id) after its response has been sent.

Entries are written by ``AuditWriter`` in batches (one transaction per ``FLUSH_INTERVAL_SECONDS`` or
``MAX_BATCH`` entries), off the request path: a mutation costs its client no extra latency, and under load
the audit log costs one write per batch instead of one per request. ``GET /v1/audit`` flushes this
process's pending entries first; the lifespan flushes on shutdown. If the DB is down, entries are kept
(up to ``MAX_PENDING``) and retried.

Requests refused before authentication (401) or by the rate limit (429) are not recorded: they are
anonymous, cheap to flood with, and already visible in the metrics and logs.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import suppress
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ains.core.access import audit
from ains.core.platform.db import Database
from ains.models.audit import AUDITED_METHODS, AuditRecord
from ains.models.tables import utcnow

log = logging.getLogger("ains.audit")
MAX_CAPTURED_BODY = 65_536
# The API and the dashboard's actions (which act as the signed-in key).
AUDITED_PREFIXES = ("/v1/", "/ui/")
FLUSH_INTERVAL_SECONDS = 0.1
MAX_BATCH = 500
MAX_PENDING = 50_000


class AuditWriter:
    """Buffers audit entries and writes them in batches from one background task."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: list[AuditRecord] = []
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def add(self, entry: AuditRecord) -> None:
        if len(self._pending) >= MAX_PENDING:
            log.error(
                "audit buffer full (%d entries, registry DB unreachable?); dropping %s %s",
                MAX_PENDING,
                entry.method,
                entry.path,
            )
            return
        self._pending.append(entry)
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ains-audit-writer")
        if len(self._pending) >= MAX_BATCH:
            self._wake.set()

    async def flush(self) -> None:
        """Write everything pending now (raises if the DB refuses; the entries stay pending)."""
        async with self._lock:
            while self._pending:
                batch = self._pending[:MAX_BATCH]
                async with self._db.transaction() as session:
                    await audit.record_many(session, batch)
                del self._pending[: len(batch)]

    async def _run(self) -> None:
        while not self._closed:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_INTERVAL_SECONDS)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:
                log.exception("could not write %d audit entries; retrying", len(self._pending))
                await asyncio.sleep(1.0)

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception:
            log.exception("lost %d audit entries at shutdown: the registry DB refused them", len(self._pending))


def _resource_id(scope: Scope, status: int, body: bytes) -> str | None:
    params: dict[str, Any] = scope.get("path_params") or {}
    if params:
        return str(list(params.values())[-1])[:200]
    if 200 <= status < 300 and body:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if isinstance(data, dict) and isinstance(data.get("id"), str | int):
            return str(data["id"])[:200]
    return None


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in AUDITED_METHODS
            or not scope["path"].startswith(AUDITED_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        status = 500
        chunks: list[bytes] = []
        size = 0

        async def capture(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and size < MAX_CAPTURED_BODY:
                body = message.get("body", b"")
                chunks.append(body)
                size += len(body)
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            self._record(scope, status, b"".join(chunks) if size <= MAX_CAPTURED_BODY else b"")

    def _record(self, scope: Scope, status: int, body: bytes) -> None:
        state_dict: dict[str, Any] = scope.get("state") or {}
        principal = state_dict.get("principal")
        app_state = getattr(getattr(scope.get("app"), "state", None), "ains", None)
        writer: AuditWriter | None = getattr(app_state, "audit", None)
        if principal is None or writer is None:
            return
        headers = dict(scope.get("headers") or [])
        client = scope.get("client")
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        entry = AuditRecord(
            created_at=utcnow(),
            client_id=principal.client_id,
            key_id=principal.key_id,
            method=scope["method"],
            route=route[:200],
            path=scope["path"][:2048],
            resource_id=_resource_id(scope, status, body),
            status_code=status,
            client_ip=client[0][:64] if client else None,
            user_agent=headers.get(b"user-agent", b"").decode("latin-1")[:300] or None,
            request_id=str(state_dict.get("request_id", ""))[:100],
        )
        writer.add(entry)
