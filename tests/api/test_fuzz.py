"""Fuzz the real API from its own OpenAPI schema with schemathesis: no 5xx, and every documented response
matches its schema. Bounded: a few examples per operation, derandomized (reproducible in CI), one run
on the first backend only, under about a minute.

Runs in a thread (schemathesis calls are synchronous) so the API server on this event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select

from models.keys import Scope
from models.tables import Schedule, WebhookSubscription
from tests.support.stack import Stack, auth

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

MAX_EXAMPLES = 8  # per operation, valid and invalid requests mixed
TIME_BUDGET_SECONDS = 50.0
REQUEST_TIMEOUT_SECONDS = 10


def _fuzz(base_url: str, headers: dict[str, str]) -> tuple[list[str], int, Counter[int]]:
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    operations = 0
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + TIME_BUDGET_SECONDS
    for result in schema.get_all_operations():
        operation = result.ok()
        if time.monotonic() > deadline:
            failures.append(f"time budget exhausted before {operation.label}")
            break
        operations += 1

        strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE) | operation.as_strategy(
            generation_mode=GenerationMode.NEGATIVE
        )

        @given(case=strategy)
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            response = case.call(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS)
            statuses[response.status_code] += 1
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance, content_type_conformance]
            )

        try:
            check()
        except Exception as exc:  # one line per failing operation, with schemathesis's explanation
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    return failures, operations, statuses


async def test_fuzz_api_from_openapi_schema(stack: Stack) -> None:
    if stack.backend != "sqlite":
        pytest.skip("the fuzz run exercises API validation; one backend is enough")
    key, client_id = await stack.new_key(client_id="fuzz-admin", scopes=[Scope.ADMIN])
    started = time.monotonic()
    try:
        failures, operations, statuses = await asyncio.to_thread(_fuzz, stack.api_url, auth(key))
    finally:
        await _remove_fuzzed(stack, key, client_id)
    assert operations >= 20
    # The run really exercised the API: many requests, accepted ones among them, and no 5xx at all.
    assert sum(statuses.values()) >= 2 * operations, statuses
    assert sum(n for status, n in statuses.items() if status < 300) >= operations // 2, statuses
    assert not [status for status in statuses if status >= 500], statuses
    print(f"fuzzed {operations} operations: {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < TIME_BUDGET_SECONDS + 30


async def _remove_fuzzed(stack: Stack, key: str, client_id: str) -> None:
    """Schedules created by the fuzzer would keep firing tasks, and its webhook subscriptions would receive
    other tests' agent events, for the rest of the session: delete exactly the fuzz client's ones."""
    async with stack.db.session() as session:
        schedules = (await session.execute(select(Schedule.id).where(Schedule.client_id == client_id))).scalars()
        hooks = (
            await session.execute(select(WebhookSubscription.id).where(WebhookSubscription.client_id == client_id))
        ).scalars()
        doomed = [f"/v1/schedules/{i}" for i in schedules] + [f"/v1/webhooks/{i}" for i in hooks]
    for path in doomed:
        deleted = await stack.http.delete(path, headers=auth(key))
        assert deleted.status_code in (200, 204, 404), deleted.text
