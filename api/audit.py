"""Audit log middleware: every POST/PUT/PATCH/DELETE under /v1 made with a valid API key is recorded
(who: client and key id; what: method, route template, path, resource id, status; when; from where:
client IP and user agent; request id) after its response has been sent.

Requests refused before authentication (401) or by the rate limit (429) are not recorded: they are
anonymous, cheap to flood with, and already visible in the metrics and logs.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import audit
from models.audit import AUDITED_METHODS, AuditRecord

log = logging.getLogger("ains.audit")
MAX_CAPTURED_BODY = 65_536


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
        if scope["type"] != "http" or scope["method"] not in AUDITED_METHODS or not scope["path"].startswith("/v1/"):
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
            await self._record(scope, status, b"".join(chunks) if size <= MAX_CAPTURED_BODY else b"")

    async def _record(self, scope: Scope, status: int, body: bytes) -> None:
        state_dict: dict[str, Any] = scope.get("state") or {}
        principal = state_dict.get("principal")
        app = scope.get("app")
        ains = getattr(getattr(app, "state", None), "ains", None)
        if principal is None or ains is None or not ains.settings.audit_enabled:
            return
        headers = dict(scope.get("headers") or [])
        client = scope.get("client")
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        entry = AuditRecord(
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
        try:
            async with ains.db.transaction() as session:
                await audit.record(session, entry)
        except Exception:
            # The mutation already happened and was answered; losing its audit entry must be loud.
            log.exception("could not write the audit entry for %s %s", entry.method, entry.path)
