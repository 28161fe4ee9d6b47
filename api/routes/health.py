"""Liveness, readiness and metrics endpoints (unauthenticated, for probes and scrapers)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from ains.api import metrics
from ains.api.deps import State
from ains.api.json_body import SafeJSONRoute
from ains.core.platform.ratelimit import RedisRateLimiter

router = APIRouter(tags=["health"], route_class=SafeJSONRoute)
CHECK_TIMEOUT_SECONDS = 2.0


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: the process is serving."""
    return {"status": "ok"}


async def _check(name: str, probe: Any) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)
        return name, None
    except Exception as exc:  # any failure means not ready; the message names it
        return name, f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__


async def _temporal_ping(state: Any) -> None:
    client = await state.temporal()
    await client.service_client.check_health()


@router.get("/ready")
async def ready(state: State) -> JSONResponse:
    """Readiness: database, Temporal and (when configured) Redis reachable; 503 naming what is not."""
    probes = [_check("database", state.db.ping()), _check("temporal", _temporal_ping(state))]
    if state.redis is not None:
        probes.append(_check("redis", state.redis.ping()))
    results = dict(await asyncio.gather(*probes))
    checks: dict[str, str] = {name: "ok" if err is None else f"failing: {err}" for name, err in results.items()}
    if isinstance(state.rate_limiter, RedisRateLimiter) and results.get("redis") is not None:
        checks["rate_limiting"] = "degraded: in-process limits while Redis is unreachable"
    # Requests keep working without Redis (rate limits fall back to in-process), but a replica whose
    # limits are no longer shared is reported not ready so operators see it.
    failing = [name for name, err in results.items() if err is not None]
    body = {"status": "ready" if not failing else "not_ready", "failing": failing, "checks": checks}
    return JSONResponse(body, status_code=200 if not failing else 503)


@router.get("/metrics", include_in_schema=False)
async def prometheus(state: State) -> Response:
    payload, content_type = await metrics.render(state.db)
    return Response(payload, media_type=content_type)
