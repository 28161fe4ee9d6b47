"""Which agent calls run inline (models.workflow_io.calls_inline) and the limit tasks are started with."""

from __future__ import annotations

import pytest

from ains.core.platform.settings import Settings
from ains.models.workflow_io import ExecutionPolicy, calls_inline

POLICY = ExecutionPolicy(inline_call_max_ms=500)


@pytest.mark.parametrize(
    ("kind", "avg_ms", "policy", "inline"),
    [
        ("http", 53.0, POLICY, True),
        ("http", 500.0, POLICY, True),
        ("http", 500.1, POLICY, False),  # slower than the limit
        ("http", None, POLICY, False),  # not measured yet
        ("llm", 10.0, POLICY, False),  # LLM calls keep their own queue
        ("http", 0.0, ExecutionPolicy(), False),  # runs started before inline calls (limit 0)
    ],
)
def test_only_measured_fast_http_agents_are_called_inline(
    kind: str, avg_ms: float | None, policy: ExecutionPolicy, inline: bool
) -> None:
    assert calls_inline(kind, avg_ms, policy) is inline


def test_calls_on_their_own_worker_pool_are_never_inline() -> None:
    assert Settings(agent_inline_call_max_ms=800).inline_call_max_ms() == 800
    assert Settings(agent_inline_call_max_ms=800, agent_calls_queue="agents").inline_call_max_ms() == 0
