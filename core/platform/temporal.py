"""Temporal client creation and what a failed request means."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode

from ains.core.platform.settings import Settings

# Temporal missed the request rather than refused it: the same request may succeed later as it is.
TRANSIENT_STATUSES = frozenset(
    {RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED}
)


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    # Interceptors on the client also apply to workers built on it: domain metrics, and tracing when enabled.
    from ains.core.platform.metrics import DomainMetricsInterceptor
    from ains.core.platform.tracing import temporal_interceptors

    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
        interceptors=[DomainMetricsInterceptor(), *temporal_interceptors(settings)],
    )


def prometheus_runtime(port: int, host: str = "127.0.0.1") -> Runtime:
    """An SDK runtime that serves worker metrics (task latencies, slots, polls) on ``host:port``."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"{host}:{port}")))


def is_transient(exc: BaseException) -> bool:
    """Whether a failed request may succeed later unchanged (Temporal unreachable, overloaded or too slow)."""
    return isinstance(exc, RPCError) and exc.status in TRANSIENT_STATUSES
