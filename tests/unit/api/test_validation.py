"""Bad input gets a clear message and the right status, never a 500 (the API in process: tests/unit/api/conftest.py)."""

from __future__ import annotations

import pytest

from tests.support.stack import auth
from tests.unit.api.conftest import InProcessApi


@pytest.mark.parametrize("priority", [0, 11, -1, "high"])
async def test_priority_outside_1_to_10_is_422(api: InProcessApi, priority: object) -> None:
    key, _ = await api.new_key()
    response = await api.http.post("/v1/tasks", headers=auth(key), json={"type": "echo", "priority": priority})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "priority" in error["message"]


async def test_unknown_fields_are_refused(api: InProcessApi) -> None:
    key, _ = await api.new_key()
    response = await api.http.post("/v1/tasks", headers=auth(key), json={"type": "echo", "priorty": 5})
    assert response.status_code == 422
    assert "priorty" in response.json()["error"]["message"]
    agent = await api.http.post(
        "/v1/agents",
        headers=auth(api.admin_key),
        json={
            "id": "x",
            "display_name": "x",
            "endpoint_url": "http://127.0.0.1:1/",
            "capabilities": [{"tag": "a"}],
            "colour": "red",
        },
    )
    assert agent.status_code == 422


async def test_oversize_request_body_is_413_before_parsing(api: InProcessApi) -> None:
    key, _ = await api.new_key()
    body = b'{"type": "echo", "input": {"t": "' + b"y" * (api.settings.max_request_bytes + 1) + b'"}}'
    response = await api.http.post("/v1/tasks", headers={**auth(key), "Content-Type": "application/json"}, content=body)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"type": "echo", "timeout_seconds": 0}, "timeout_seconds"),
        ({"type": "echo", "max_attempts": 0}, "max_attempts"),
        ({"type": "echo", "required_capabilities": ["Bad Tag!"]}, "invalid capability requirement"),
        ({"type": "echo", "required_capabilities": ["summarize>=x.y"]}, "invalid version constraint"),
        ({"type": "", "input": {}}, "type"),
        ({"type": "echo", "input": [1, 2]}, "input"),
        ({}, "type"),
    ],
)
async def test_invalid_task_fields_get_422_with_the_reason(
    api: InProcessApi, body: dict[str, object], fragment: str
) -> None:
    key, _ = await api.new_key()
    response = await api.http.post("/v1/tasks", headers=auth(key), json=body)
    assert response.status_code == 422, response.text
    assert fragment in response.json()["error"]["message"]


async def test_malformed_json_is_422_not_500(api: InProcessApi) -> None:
    key, _ = await api.new_key()
    response = await api.http.post(
        "/v1/tasks", headers={**auth(key), "Content-Type": "application/json"}, content=b"{not json"
    )
    assert response.status_code == 422


async def test_unknown_task_is_404(api: InProcessApi) -> None:
    key, _ = await api.new_key()
    response = await api.http.get("/v1/tasks/tsk_does_not_exist", headers=auth(key))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
