"""Limits the API checks against its settings once it holds its Temporal client (a POST /v1/tasks that has never
reached Temporal is a 503 first: README, API overview), so they run on the stack; the rest of validation runs in
process (tests/unit/api/test_validation.py)."""

from __future__ import annotations

import pytest

from tests.support.stack import Stack, auth


async def test_oversize_task_input_is_413_naming_the_limit(stack: Stack) -> None:
    key, _ = await stack.new_key()
    big = {"text": "x" * (stack.settings.max_task_input_bytes + 10)}
    response = await stack.http.post("/v1/tasks", headers=auth(key), json={"type": "echo", "input": big})
    assert response.status_code == 413
    message = response.json()["error"]["message"]
    assert str(stack.settings.max_task_input_bytes) in message and "AINS_MAX_TASK_INPUT_BYTES" in message


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"type": "echo", "timeout_seconds": 100000}, "timeout_seconds must be at most"),
        ({"type": "echo", "max_attempts": 50}, "max_attempts must be at most"),
    ],
)
async def test_fields_beyond_the_settings_limits_get_422_naming_the_limit(
    stack: Stack, body: dict[str, object], fragment: str
) -> None:
    key, _ = await stack.new_key()
    response = await stack.http.post("/v1/tasks", headers=auth(key), json=body)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["error"]["message"]
