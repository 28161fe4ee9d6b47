"""Prometheus metrics of LLM calls, per provider and deployment, in the worker's domain registry.

Every deployment attempt is counted (also one rescued by a fallback) through a litellm callback; tokens
and cost are counted once per settled call by core.llm.service.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Histogram

from ains.core.platform.metrics import DOMAIN_REGISTRY

log = logging.getLogger("ains.llm")

# Key of the provider label in each deployment's litellm model_info.
PROVIDER_INFO_KEY = "ains_provider"
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


def _labels(kwargs: dict[str, Any]) -> tuple[str, str]:
    """Provider and deployment id, from the model_info the provider manager gives every deployment."""
    params = kwargs.get("litellm_params") or {}
    info = params.get("model_info") or {}
    return str(info.get(PROVIDER_INFO_KEY) or "unknown"), str(info.get("id") or "unknown")


def install_litellm_callback() -> None:
    """Count every deployment attempt (also those rescued by a fallback); once per process."""
    if _installed:
        return
    import litellm
    from litellm.exceptions import Timeout
    from litellm.integrations.custom_logger import CustomLogger

    class _Metrics(CustomLogger):
        async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            provider, deployment = _labels(kwargs)
            LLM_CALLS.labels(provider, deployment, "success").inc()
            LLM_LATENCY.labels(provider).observe(_seconds(start_time, end_time))

        async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
            provider, deployment = _labels(kwargs)
            outcome = "timeout" if isinstance(kwargs.get("exception"), Timeout) else "failure"
            LLM_CALLS.labels(provider, deployment, outcome).inc()
            LLM_ERRORS.labels(provider, deployment).inc()
            LLM_LATENCY.labels(provider).observe(_seconds(start_time, end_time))

    handler = _Metrics()
    _installed.append(handler)
    callbacks: list[Any] = litellm.callbacks
    callbacks.append(handler)
