"""Fuzz the real API from its own OpenAPI schema with schemathesis: no 5xx, and every documented response
matches its schema. Three phases, all derandomized (reproducible in CI), on the first backend only, bounded in
time (about a minute together):

* every operation on its own, valid and invalid requests (a few examples each);
* the stateful phase: sequences of calls linking one response's ids into the next requests;
* JSON edge cases sent to every operation that takes a body: lone surrogates, NaN/Infinity, huge integers,
  deep nesting (each a 422), and a chunked body over the size limit (413).

Afterwards every task the fuzzer got accepted must read back (GET 200).

Runs in a thread (schemathesis calls are synchronous) so the API server on this event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from ains.models.keys import Scope
from ains.models.tables import Schedule, WebhookSubscription
from tests.support.stack import Stack, auth

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")

MAX_EXAMPLES = 6  # per operation, valid and invalid requests mixed
STATEFUL_EXAMPLES = 15  # call sequences, each up to STATEFUL_STEPS calls
STATEFUL_STEPS = 6
TIME_BUDGET_SECONDS = 50.0
REQUEST_TIMEOUT_SECONDS = 30  # the first LLM call (POST /v1/plans/generate) imports litellm: seconds on a busy machine
EDGE_BODIES = {
    "lone surrogate": b'{"x": "\\ud800"}',
    "surrogate bytes": b'{"x": "\xed\xa0\x80"}',
    "NaN": b'{"x": NaN}',
    "Infinity": b'{"x": [Infinity]}',
    "huge integer": b'{"x": 123456789012345678901234567890}',
    "deep nesting": b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
}
# Edge values that are fine: a task carrying them is accepted and must read back.
SAFE_EDGE_INPUTS = [
    b'{"emoji": "\\ud83d\\ude00", "raw": "\xf0\x9f\x98\x80", "nul": "a\\u0000b"}',
    b'{"max": 9007199254740991, "min": -9007199254740991, "tiny": 5e-324, "big": 1.7976931348623157e308}',
    b'{"deep": ' + b"[" * 60 + b"]" * 60 + b', "empty": {"": ""}}',
]


def _fuzz(base_url: str, headers: dict[str, str], accepted: set[str]) -> tuple[list[str], int, Counter[int]]:
    from hypothesis import HealthCheck, Phase, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

    # Left out: the agent-call endpoints, authenticated by the agent signature over the raw body (every
    # unsigned request is a 401 before anything else; tests/e2e/sdk covers them), and the task event stream,
    # which stays open until its task finishes (time-dependent answers make Hypothesis's replays diverge).
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json").exclude(path_regex=UNFUZZED_PATHS)
    failures: list[str] = []
    operations = 0
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + TIME_BUDGET_SECONDS

    def note(case: Any, response: Any) -> None:
        statuses[response.status_code] += 1
        if case.method.upper() == "POST" and case.path == "/v1/tasks" and response.status_code == 202:
            accepted.add(response.json()["id"])

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
            note(case, response)
            case.validate_response(
                response, checks=[not_a_server_error, response_schema_conformance, content_type_conformance]
            )

        try:
            check()
        except Exception as exc:  # one line per failing operation, with schemathesis's explanation
            causes = getattr(exc, "exceptions", None) or [exc]
            failures.append(f"{operation.label}: {'; '.join(str(c)[:1500] for c in causes)}")

    # Stateful: sequences that create resources and use their ids (links inferred from the schema).
    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"base_url": base_url, "headers": headers, "timeout": REQUEST_TIMEOUT_SECONDS}

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            note(case, response)

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            # Recorded, not raised: Hypothesis would replay the sequence against an API whose state has moved
            # on, and report inconsistent data instead of this failure.
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except Exception as exc:
                failures.append(f"stateful {case.method} {case.formatted_path}: {str(exc)[:1500]}")

    try:
        Machine.run(
            settings=settings(
                max_examples=STATEFUL_EXAMPLES,
                stateful_step_count=STATEFUL_STEPS,
                phases=[Phase.generate],
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
        )
    except Exception as exc:
        failures.append(f"stateful phase: {str(exc)[:3000]}")
    return failures, operations, statuses


UNFUZZED_PATHS = r"^/v1/agent-calls/|/events$"


def _edge_cases(base_url: str, headers: dict[str, str], max_bytes: int, accepted: set[str]) -> list[str]:
    """Every operation with a JSON body gets each unsafe body (422 expected) and a chunked oversize one (413);
    tasks with edge values that are fine are accepted."""
    spec = httpx.get(f"{base_url}/openapi.json").json()
    failures: list[str] = []
    with httpx.Client(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS) as http:
        for task_input in SAFE_EDGE_INPUTS:
            body = b'{"type": "fuzz-edge", "input": ' + task_input + b"}"
            response = http.post("/v1/tasks", content=body, headers={"Content-Type": "application/json"})
            if response.status_code == 202:
                accepted.add(response.json()["id"])
            else:
                failures.append(f"task with {task_input[:60]!r}: {response.status_code} {response.text[:300]}")
        for template, operations in spec["paths"].items():
            if re.search(UNFUZZED_PATHS, template):
                continue
            path = re.sub(r"\{[^}]+\}", "fuzz-edge", template)
            for method, operation in operations.items():
                if "requestBody" not in operation:
                    continue
                label = f"{method.upper()} {template}"
                for name, body in EDGE_BODIES.items():
                    response = http.request(method, path, content=body, headers={"Content-Type": "application/json"})
                    if response.status_code != 422:
                        failures.append(f"{label} with {name}: {response.status_code} {response.text[:300]}")

                def oversize() -> Iterator[bytes]:
                    yield b'{"x": "'
                    for _ in range(max_bytes // 65536 + 1):
                        yield b"x" * 65536
                    yield b'"}'

                response = http.request(method, path, content=oversize(), headers={"Content-Type": "application/json"})
                if response.status_code != 413:
                    failures.append(f"{label} chunked over the limit: {response.status_code} {response.text[:300]}")
    return failures


async def test_fuzz_api_from_openapi_schema(stack: Stack) -> None:
    if stack.backend != "sqlite":
        pytest.skip("the fuzz run exercises API validation; one backend is enough")
    key, client_id = await stack.new_key(client_id="fuzz-admin", scopes=[Scope.ADMIN])
    started = time.monotonic()
    accepted: set[str] = set()
    try:
        failures, operations, statuses = await asyncio.to_thread(_fuzz, stack.api_url, auth(key), accepted)
        failures += await asyncio.to_thread(
            _edge_cases, stack.api_url, auth(key), stack.settings.max_request_bytes, accepted
        )
        # Whatever the API accepted can be read back: every accepted task answers GET 200.
        for task_id in sorted(accepted):
            read = await stack.http.get(f"/v1/tasks/{task_id}", headers=auth(key))
            if read.status_code != 200:
                failures.append(f"accepted task {task_id}: GET answered {read.status_code} {read.text[:300]}")
        listed = await stack.http.get("/v1/tasks", params={"limit": 500}, headers=auth(key))
        if listed.status_code != 200:
            failures.append(f"GET /v1/tasks after fuzzing: {listed.status_code} {listed.text[:300]}")
    finally:
        await _remove_fuzzed(stack, key, client_id)
    assert operations >= 20
    # The run really exercised the API: many requests, accepted ones among them, and no 5xx at all.
    assert sum(statuses.values()) >= 2 * operations, statuses
    assert sum(n for status, n in statuses.items() if status < 300) >= operations // 2, statuses
    assert not [status for status in statuses if status >= 500], statuses
    assert len(accepted) >= len(SAFE_EDGE_INPUTS), accepted
    print(f"fuzzed {operations} operations, {len(accepted)} tasks accepted: {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(failures)
    assert time.monotonic() - started < TIME_BUDGET_SECONDS + 40


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
