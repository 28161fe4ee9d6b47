"""Bad input gets a clear message and the right status, never a 500."""

from __future__ import annotations

import pytest

from tests.support.stack import Stack, auth


@pytest.mark.parametrize("priority", [0, 11, -1, "high"])
async def test_priority_outside_1_to_10_is_422(stack: Stack, priority: object) -> None:
    key, _ = await stack.new_key()
    response = await stack.http.post("/v1/tasks", headers=auth(key), json={"type": "echo", "priority": priority})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "priority" in error["message"]


async def test_unknown_fields_are_refused(stack: Stack) -> None:
    key, _ = await stack.new_key()
    response = await stack.http.post("/v1/tasks", headers=auth(key), json={"type": "echo", "priorty": 5})
    assert response.status_code == 422
    assert "priorty" in response.json()["error"]["message"]
    agent = await stack.http.post(
        "/v1/agents",
        headers=auth(stack.admin_key),
        json={
            "id": "x",
            "display_name": "x",
            "endpoint_url": "http://127.0.0.1:1/",
            "capabilities": [{"tag": "a"}],
            "colour": "red",
        },
    )
    assert agent.status_code == 422


async def test_oversize_task_input_is_413_naming_the_limit(stack: Stack) -> None:
    key, _ = await stack.new_key()
    big = {"text": "x" * (stack.settings.max_task_input_bytes + 10)}
    response = await stack.http.post("/v1/tasks", headers=auth(key), json={"type": "echo", "input": big})
    assert response.status_code == 413
    message = response.json()["error"]["message"]
    assert str(stack.settings.max_task_input_bytes) in message and "AINS_MAX_TASK_INPUT_BYTES" in message


async def test_oversize_request_body_is_413_before_parsing(stack: Stack) -> None:
    key, _ = await stack.new_key()
    body = b'{"type": "echo", "input": {"t": "' + b"y" * (stack.settings.max_request_bytes + 1) + b'"}}'
    response = await stack.http.post(
        "/v1/tasks", headers={**auth(key), "Content-Type": "application/json"}, content=body
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"type": "echo", "timeout_seconds": 0}, "timeout_seconds"),
        ({"type": "echo", "timeout_seconds": 100000}, "timeout_seconds must be at most"),
        ({"type": "echo", "max_attempts": 0}, "max_attempts"),
        ({"type": "echo", "max_attempts": 50}, "max_attempts must be at most"),
        ({"type": "echo", "required_capabilities": ["Bad Tag!"]}, "invalid capability requirement"),
        ({"type": "echo", "required_capabilities": ["summarize>=x.y"]}, "invalid version constraint"),
        ({"type": "", "input": {}}, "type"),
        ({"type": "echo", "input": [1, 2]}, "input"),
        ({}, "type"),
    ],
)
async def test_invalid_task_fields_get_422_with_the_reason(
    stack: Stack, body: dict[str, object], fragment: str
) -> None:
    key, _ = await stack.new_key()
    response = await stack.http.post("/v1/tasks", headers=auth(key), json=body)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["error"]["message"]


async def test_malformed_json_is_422_not_500(stack: Stack) -> None:
    key, _ = await stack.new_key()
    response = await stack.http.post(
        "/v1/tasks", headers={**auth(key), "Content-Type": "application/json"}, content=b"{not json"
    )
    assert response.status_code == 422


async def test_unknown_task_is_404(stack: Stack) -> None:
    key, _ = await stack.new_key()
    response = await stack.http.get("/v1/tasks/tsk_does_not_exist", headers=auth(key))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
