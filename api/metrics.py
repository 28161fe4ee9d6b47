"""Prometheus metrics of the API process and the ASGI middleware that records them.

Task counts come from the registry DB at scrape time (``ains_tasks{status}``, ``ains_tasks_by_type{status,type}``),
so they are right no matter which worker process finished the task. ``/metrics`` also serves the domain
registry of core.platform.metrics (routing, agent calls, trust, webhooks, queue wait, task duration): in the API
process that is what the API itself recorded, plus everything when workers run in the same process.

The middleware also sets the request id, binds it to log lines, enforces the body size limit and adds
security headers to every response.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import func, select
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ains.core.platform.db import Database
from ains.core.platform.logging import bind_request, unbind_request
from ains.core.platform.metrics import DOMAIN_REGISTRY
from ains.models.tables import Task
from ains.models.tasks import TaskStatus

access_log = logging.getLogger("ains.access")
REGISTRY = CollectorRegistry()
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter("ains_http_requests", "HTTP requests handled", ["method", "route", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram(
    "ains_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
HTTP_IN_FLIGHT = Gauge("ains_http_requests_in_flight", "HTTP requests being handled", registry=REGISTRY)
TASKS_CREATED = Counter("ains_tasks_created", "Tasks accepted by this API process", ["type"], registry=REGISTRY)
# Runs of submitted tasks started by api.task_starter, or deferred to the dispatch reconciler (the start failed).
TASK_STARTS = Counter("ains_task_starts", "Task runs started by this API process", ["outcome"], registry=REGISTRY)
TASKS_BY_STATUS = Gauge("ains_tasks", "Tasks in the registry by status", ["status"], registry=REGISTRY)
TASKS_BY_TYPE = Gauge(
    "ains_tasks_by_type", "Tasks in the registry by status and type", ["status", "type"], registry=REGISTRY
)
# Task types are client-chosen: only the most common ones get their own series.
MAX_TASK_TYPE_SERIES = 200

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


async def render(db: Database) -> tuple[bytes, str]:
    async with db.session() as session:
        rows = await session.execute(select(Task.status, Task.type, func.count()).group_by(Task.status, Task.type))
        by_type = rows.all()
    counts: dict[str, int] = {}
    for status, _type, count in by_type:
        counts[status] = counts.get(status, 0) + count
    for status in TaskStatus:
        TASKS_BY_STATUS.labels(status=status.value).set(counts.get(status.value, 0))
    TASKS_BY_TYPE.clear()
    for status, task_type, count in sorted(by_type, key=lambda r: -r[2])[:MAX_TASK_TYPE_SERIES]:
        TASKS_BY_TYPE.labels(status=status, type=task_type).set(count)
    return generate_latest(REGISTRY) + generate_latest(DOMAIN_REGISTRY), CONTENT_TYPE_LATEST


class RequestMiddleware:
    """Request id, body size limit and metrics, as plain ASGI (cheaper than BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode()[:100] or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _too_large(send, self.max_body_bytes, request_id)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge(self.max_body_bytes)
            return message

        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = _with_security_headers(message.get("headers", []), request_id)
            await send(message)

        HTTP_IN_FLIGHT.inc()
        token = bind_request(scope)
        try:
            await self.app(scope, limited_receive, send_wrapper)
        except _BodyTooLarge:
            status = 413
            await _too_large(send, self.max_body_bytes, request_id)
        finally:
            unbind_request(token)
            HTTP_IN_FLIGHT.dec()
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            elapsed = time.perf_counter() - started
            HTTP_REQUESTS.labels(method, path, str(status)).inc()
            HTTP_LATENCY.labels(method, path).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                token = bind_request(scope)
                access_log.info(
                    "%s %s %d %.1fms",
                    method,
                    scope["path"],
                    status,
                    elapsed * 1000,
                    extra={"method": method, "route": path, "status": status, "duration_ms": round(elapsed * 1000, 3)},
                )
                unbind_request(token)


def _with_security_headers(headers: Any, request_id: str) -> list[tuple[bytes, bytes]]:
    out = list(headers)
    present = {name.lower() for name, _ in out}
    out += [(name, value) for name, value in SECURITY_HEADERS if name not in present]
    out.append((b"x-request-id", request_id.encode()))
    return out


class _BodyTooLarge(HTTPException):
    """An HTTPException, so FastAPI's body reading re-raises it (it turns other exceptions into a 400) and the
    error handlers answer 413 wherever the body is read; the middleware answers it when raised outside them."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes (AINS_MAX_REQUEST_BYTES)")


async def _too_large(send: Send, limit: int, request_id: str) -> None:
    body = (
        f'{{"error":{{"code":"payload_too_large","message":"request body exceeds {limit} bytes '
        f'(AINS_MAX_REQUEST_BYTES)"}}}}'
    ).encode()
    headers = _with_security_headers(
        [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())], request_id
    )
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
