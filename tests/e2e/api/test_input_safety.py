"""One rule at the edge: whatever the API accepts can be stored, read back, sent to an agent and written into a
workflow history. Values that cannot (lone surrogates, NaN/Infinity, integers beyond 2**53 - 1, deep nesting)
are a 422 naming the field, on every endpoint that takes JSON; numeric and boolean fields are strict."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ains.core.composition.templates import create_template
from ains.core.tasks.service import TASKS
from ains.models.tables import utcnow
from ains.models.templates import TemplateCreate
from tests.support.stack import Stack, auth

DEEP = "[" * 70 + "]" * 70

UNSAFE_INPUTS: list[tuple[str, bytes, str]] = [
    ("escaped lone surrogate", b'{"s": "\\ud800"}', "input.s"),
    ("lone low surrogate", b'{"s": ["ok", "a\\udc00b"]}', "input.s.1"),
    ("surrogate encoded as bytes", b'{"s": "\xed\xa0\x80"}', "input.s"),
    ("surrogate in a key", b'{"\\ud800": 1}', "input."),
    ("NaN", b'{"n": NaN}', "input.n"),
    ("Infinity", b'{"n": {"m": Infinity}}', "input.n.m"),
    ("-Infinity", b'{"n": -Infinity}', "input.n"),
    ("overflowing float", b'{"n": 1e400}', "input.n"),
    ("integer above 2**53 - 1", b'{"n": 9007199254740992}', "input.n"),
    ("integer below int64", b'{"n": -9223372036854775809}', "input.n"),
    ("deep nesting", b'{"n": ' + DEEP.encode() + b"}", "input.n"),
]


def _task_body(input_json: bytes) -> bytes:
    return b'{"type": "echo", "input": ' + input_json + b"}"


@pytest.mark.parametrize(("case", "input_json", "field"), UNSAFE_INPUTS, ids=[c[0] for c in UNSAFE_INPUTS])
async def test_unsafe_task_input_is_422_naming_the_field(
    stack: Stack, case: str, input_json: bytes, field: str
) -> None:
    key, _ = await stack.new_key()
    response = await stack.http.post(
        "/v1/tasks", headers={**auth(key), "Content-Type": "application/json"}, content=_task_body(input_json)
    )
    assert response.status_code == 422, (case, response.text)
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith(field), (case, error["message"])
    listed = await stack.http.get("/v1/tasks", headers=auth(key))
    assert listed.status_code == 200 and listed.json()["items"] == []  # nothing was stored


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/templates", b'{"name": "t", "task_type": "echo", "defaults": {"input": {"s": "\\udfff"}}}', "defaults"),
        ("/v1/task-chains", b'{"steps": [{"name": "a", "type": "echo", "input": {"x": NaN}}]}', "steps.0.input.x"),
        ("/v1/plans", b'{"steps": [{"name": "a", "type": "echo", "input": {"x": 1e999}}]}', "steps.0.input.x"),
        ("/v1/tasks/batch", b'{"tasks": [{"type": "echo"}, {"type": "echo", "input": {"s": "\\ud800"}}]}', "tasks.1"),
        ("/v1/webhooks", b'{"url": "http://127.0.0.1:1/\\ud800", "event_types": ["task.failed"]}', "url"),
        (
            "/v1/agents",
            b'{"id": "a", "display_name": "\\ud800", "endpoint_url": "http://127.0.0.1:1/"}',
            "display_name",
        ),
    ],
)
async def test_every_json_endpoint_applies_the_rule(stack: Stack, path: str, body: bytes, field: str) -> None:
    response = await stack.http.post(
        path, headers={**auth(stack.admin_key), "Content-Type": "application/json"}, content=body
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(field), response.text


async def test_valid_unicode_and_numbers_are_accepted_and_read_back(stack: Stack) -> None:
    key, _ = await stack.new_key()
    value: dict[str, Any] = {
        "emoji": "\U0001f600",  # a surrogate pair when escaped: valid
        "text": "Grüße, 日本",
        "big": 2**53 - 1,
        "small": -(2**53 - 1),
        "float": 1.5e300,
        "nested": json.loads("[" * 30 + "]" * 30),
    }
    body = (
        b'{"type": "echo", "input": {"emoji": "\\ud83d\\ude00", "text": "Gr\\u00fc\\u00dfe, \xe6\x97\xa5\xe6\x9c\xac",'
    )
    body += b' "big": 9007199254740991, "small": -9007199254740991, "float": 1.5e300, "nested": '
    body += ("[" * 30 + "]" * 30).encode() + b"}}"
    response = await stack.http.post(
        "/v1/tasks", headers={**auth(key), "Content-Type": "application/json"}, content=body
    )
    assert response.status_code == 202, response.text
    read = await stack.http.get(f"/v1/tasks/{response.json()['id']}", headers=auth(key))
    assert read.status_code == 200
    assert read.json()["input"] == value


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "echo", "priority": "5"}, "priority"),
        ({"type": "echo", "priority": True}, "priority"),
        ({"type": "echo", "priority": 5.0}, "priority"),
        ({"type": "echo", "timeout_seconds": "30"}, "timeout_seconds"),
        ({"type": "echo", "max_attempts": False}, "max_attempts"),
        ({"type": "echo", "min_trust": "0.5"}, "min_trust"),
        ({"type": "echo", "min_trust": True}, "min_trust"),
        ({"type": "echo", "queue_timeout_seconds": "60"}, "queue_timeout_seconds"),
        ({"type": "echo", "retry_policy": {"backoff_coefficient": "2"}}, "retry_policy.backoff_coefficient"),
    ],
)
async def test_numeric_and_boolean_fields_are_strict(stack: Stack, body: dict[str, Any], field: str) -> None:
    key, _ = await stack.new_key()
    response = await stack.http.post("/v1/tasks", headers=auth(key), json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith(field), response.text


async def test_strict_booleans_in_chains_and_schedules(stack: Stack) -> None:
    chain = await stack.http.post(
        "/v1/task-chains",
        headers=auth(stack.admin_key),
        json={"steps": [{"name": "a", "type": "echo", "pass_output": 1}]},
    )
    assert chain.status_code == 422 and "pass_output" in chain.json()["error"]["message"], chain.text
    schedule = await stack.http.post(
        "/v1/schedules",
        headers=auth(stack.admin_key),
        json={
            "name": "s",
            "interval_seconds": 3600,
            "paused": "true",
            "target": {"kind": "task", "task": {"type": "x"}},
        },
    )
    assert schedule.status_code == 422 and "paused" in schedule.json()["error"]["message"], schedule.text


async def test_a_template_stored_with_an_unsafe_input_cannot_poison_a_task(stack: Stack) -> None:
    """A template written before this rule existed (or by any other path): the task it would make is refused."""
    key, client_id = await stack.new_key()
    async with stack.db.transaction() as session:
        template = await create_template(
            session, client_id, TemplateCreate(name="poisoned", task_type="echo", defaults={})
        )
    async with stack.db.transaction() as session:
        from ains.models.tables import TaskTemplate

        row = await session.get(TaskTemplate, template.id)
        assert row is not None
        row.defaults = {"input": {"s": "\ud800"}}
    response = await stack.http.post("/v1/tasks", headers=auth(key), json={"template_id": template.id})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith("input.s: lone UTF-16 surrogate")


# ----------------------------------------------------------------------------- other edge cases of the issue


async def test_the_schedules_list_refuses_a_cursor_it_did_not_mint_with_422(stack: Stack) -> None:
    for cursor in ("sch_1", TASKS.encode((utcnow(), "t"))):
        response = await stack.http.get("/v1/schedules", params={"cursor": cursor}, headers=auth(stack.admin_key))
        assert response.status_code == 422, (cursor, response.text)


async def test_plan_generation_with_an_empty_model_group_is_422(stack: Stack) -> None:
    response = await stack.http.post(
        "/v1/plans/generate", headers=auth(stack.admin_key), json={"goal": "do it", "model_group": ""}
    )
    assert response.status_code == 422, response.text
    assert "model_group" in response.json()["error"]["message"]


async def test_chunked_body_over_the_limit_is_413(stack: Stack) -> None:
    """A body sent with Transfer-Encoding: chunked (no Content-Length, as `curl -T -` sends it) is counted as
    it arrives."""
    key, _ = await stack.new_key()
    limit = stack.settings.max_request_bytes

    async def chunks(total: int) -> AsyncIterator[bytes]:
        yield b'{"type": "echo", "input": {"t": "'
        for _ in range(total // 65536 + 1):
            yield b"x" * 65536
        yield b'"}}'

    headers = {**auth(key), "Content-Type": "application/json"}
    response = await stack.http.post("/v1/tasks", headers=headers, content=chunks(limit + 1))
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "payload_too_large" and "AINS_MAX_REQUEST_BYTES" in error["message"]

    async def small() -> AsyncIterator[bytes]:
        yield b'{"type": "echo"}'

    assert (await stack.http.post("/v1/tasks", headers=headers, content=small())).status_code == 202
