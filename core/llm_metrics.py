"""Prometheus metrics of LLM calls, per provider and deployment, in the worker's domain registry.

Every deployment attempt is counted (also one rescued by a fallback) through a litellm callback; tokens
and cost are counted once per settled call by core.llm.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Histogram

from core.metrics import DOMAIN_REGISTRY

if TYPE_CHECKING:
    from core.providers import ProviderManager

log = logging.getLogger("ains.llm")

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

LLM_CALLS = Counter(
    "ains_llm_calls",
    "LLM deployment calls by provider, deployment and outcome (success, failure, timeout)",
    ["provider", "deployment", "outcome"],
    registry=DOMAIN_REGISTRY,
)
LLM_ERRORS = Counter(
    "ains_llm_errors", "Failed LLM deployment calls by provider", ["provider", "deployment"], registry=DOMAIN_REGISTRY
)
LLM_LATENCY = Histogram(
    "ains_llm_call_duration_seconds",
    "LLM deployment call latency by provider",
    ["provider"],
    buckets=LATENCY_BUCKETS,
    registry=DOMAIN_REGISTRY,
)
LLM_TOKENS = Counter(
    "ains_llm_tokens",
    "Tokens of settled LLM calls by provider and kind",
    ["provider", "kind"],
    registry=DOMAIN_REGISTRY,
)
LLM_COST = Counter("ains_llm_cost_usd", "USD spent on LLM calls by provider", ["provider"], registry=DOMAIN_REGISTRY)
LLM_CACHE_HITS = Counter(
    "ains_llm_cache_hits", "LLM calls answered from the response cache", ["model_group"], registry=DOMAIN_REGISTRY
)
LLM_BUDGET_REFUSALS = Counter(
    "ains_llm_budget_refusals", "LLM calls refused by a client budget", registry=DOMAIN_REGISTRY
)

_installed: list[Any] = []


def _seconds(start: Any, end: Any) -> float:
    if isinstance(start, datetime) and isinstance(end, datetime):
        return max((end - start).total_seconds(), 0.0)
    if isinstance(start, int | float) and isinstance(end, int | float):
        return max(float(end - start), 0.0)
    return 0.0


def install_litellm_callback(manager: ProviderManager) -> None:
    """Count every deployment attempt; idempotent per manager (the latest one resolves deployment ids)."""
    from litellm.exceptions import Timeout
    from litellm.integrations.custom_logger import CustomLogger

    class _Metrics(CustomLogger):
        def _labels(self, kwargs: dict[str, Any]) -> tuple[str, str]:
            params = kwargs.get("litellm_params") or {}
            info = params.get("model_info") or {}
            deployment_id = str(info.get("id") or "unknown")
            deployment = manager.config.deployment(deployment_id)
            return (deployment.provider if deployment else "unknown"), deployment_id

        async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            provider, deployment = self._labels(kwargs)
            LLM_CALLS.labels(provider, deployment, "success").inc()
            LLM_LATENCY.labels(provider).observe(_seconds(start_time, end_time))

        async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            provider, deployment = self._labels(kwargs)
            exc = kwargs.get("exception")
            outcome = "timeout" if isinstance(exc, Timeout) else "failure"
            LLM_CALLS.labels(provider, deployment, outcome).inc()
            LLM_ERRORS.labels(provider, deployment).inc()
            LLM_LATENCY.labels(provider).observe(_seconds(start_time, end_time))

    for old in _installed:
        if old in litellm_callbacks():
            litellm_callbacks().remove(old)
    _installed.clear()
    handler = _Metrics()
    _installed.append(handler)
    litellm_callbacks().append(handler)


def litellm_callbacks() -> list[Any]:
    import litellm

    callbacks: list[Any] = litellm.callbacks
    return callbacks
