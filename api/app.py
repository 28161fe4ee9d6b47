"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from ains.api import errors
from ains.api.audit import AuditMiddleware, AuditWriter
from ains.api.metrics import RequestMiddleware
from ains.api.routes import (
    agent_calls,
    agents,
    budgets,
    compositions,
    health,
    keys,
    plan_generator,
    providers,
    schedules,
    tasks,
    templates,
    trust,
    usage,
    webhooks,
)
from ains.api.routes import audit as audit_routes
from ains.api.state import AppState
from ains.api.ui import mount as mount_dashboard
from ains.core.platform.settings import Settings, get_settings
from ains.core.platform.tracing import instrument_app

DESCRIPTION = """
AINS runs tasks for AI agents as durable Temporal workflows: each task is routed to a capable agent,
called over HTTP, and the outcome moves the agent's trust score.

Authenticate with `Authorization: Bearer ains_...`. Errors share one shape:
`{"error": {"code": "...", "message": "...", "details": ...}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = AppState.create(settings)
        state.audit = AuditWriter(state.db) if settings.audit_enabled else None
        app.state.ains = state
        try:
            yield
        finally:
            await state.close()

    # Swagger UI and ReDoc from the fastapi-offline package (under /static-offline-docs), not from a CDN, so
    # /docs works without internet access.
    app = FastAPIOffline(
        title="AINS",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=errors.ERROR_RESPONSES,
    )
    errors.install(app)
    for llm_router in (plan_generator.router, providers.router, usage.router, budgets.router):  # before /v1/plans
        app.include_router(llm_router)
    for router in (
        compositions.chains,
        compositions.plans,
        templates.router,
        health.router,
        keys.router,
        agents.router,
        agent_calls.router,
        tasks.router,
        trust.router,
        schedules.router,
        webhooks.router,
    ):
        app.include_router(router)
    app.include_router(audit_routes.router)
    mount_dashboard(app)
    # Innermost first: the audit middleware sees the principal and route; CORS answers preflights;
    # RequestMiddleware (outermost) sets the request id, the size limit, security headers and metrics.
    app.add_middleware(AuditMiddleware)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "X-Request-Id"],
            expose_headers=["X-Request-Id", "Retry-After"],
        )
    app.add_middleware(RequestMiddleware, max_body_bytes=settings.max_request_bytes)
    instrument_app(app, settings)
    return app
