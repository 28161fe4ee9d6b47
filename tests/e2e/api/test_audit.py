"""Audit log: every mutation under /v1 is recorded (who, what, when, from where), readable by admins."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from ains.api.app import create_app
from ains.api.routes.agent_calls import AGENT_SIGNATURE_AUTH
from ains.models.keys import Scope
from ains.models.tables import AuditEntry
from tests.support.stack import Stack, auth

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


async def _admin(stack: Stack) -> tuple[str, str, str]:
    """A fresh admin key; returns (key, client_id, key_id)."""
    key, client_id = await stack.new_key(scopes=[Scope.ADMIN])
    keys = (await stack.http.get("/v1/keys", headers=auth(stack.admin_key), params={"client_id": client_id})).json()
    return key, client_id, keys[0]["id"]


async def _entries(stack: Stack, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = await stack.http.get("/v1/audit", headers=auth(stack.admin_key), params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def test_each_mutation_kind_is_audited_with_who_what_when_where(stack: Stack) -> None:
    key, client_id, key_id = await _admin(stack)
    h = auth(key)
    started = datetime.now(UTC) - timedelta(seconds=1)
    agent_id = f"agent-{uuid.uuid4().hex[:8]}"
    _, tag = await stack.register_agent("/run")
    calls: list[tuple[str, str, str, str | None, int]] = []  # method, route, path, resource id, status

    async def do(method: str, path: str, route: str, resource: str | None, status: int, **kw: Any) -> Any:
        response = await stack.http.request(method, path, headers={**h, "User-Agent": "audit-test/1"}, **kw)
        assert response.status_code == status, (method, path, response.text)
        calls.append((method, route, path, resource, status))
        return response

    agent = {
        "id": agent_id,
        "display_name": "audited",
        "endpoint_url": f"{stack.demo_url}/run",
        "capabilities": [{"tag": tag, "version": "1.0"}],
    }
    await do("POST", "/v1/agents", "/v1/agents", agent_id, 201, json=agent)
    await do("PATCH", f"/v1/agents/{agent_id}", "/v1/agents/{agent_id}", agent_id, 200, json={"max_concurrency": 3})
    await do("POST", f"/v1/agents/{agent_id}/heartbeat", "/v1/agents/{agent_id}/heartbeat", agent_id, 200)
    await do(
        "POST", f"/v1/agents/{agent_id}/trust", "/v1/agents/{agent_id}/trust", agent_id, 201,
        json={"score": 0.7, "reason": "audit test"},
    )  # fmt: skip
    created = await do("POST", "/v1/keys", "/v1/keys", None, 201, json={"client_id": f"c-{uuid.uuid4().hex[:6]}"})
    new_key_id, new_key_secret = created.json()["id"], created.json()["key"]
    calls[-1] = (*calls[-1][:3], new_key_id, 201)
    await do("DELETE", f"/v1/keys/{new_key_id}", "/v1/keys/{key_id}", new_key_id, 200)
    task = (await do("POST", "/v1/tasks", "/v1/tasks", None, 202, json={"type": "echo", "input": {"delay_seconds": 5},
             "required_capabilities": [tag]})).json()  # fmt: skip
    calls[-1] = (*calls[-1][:3], task["id"], 202)
    await do("POST", f"/v1/tasks/{task['id']}/cancel", "/v1/tasks/{task_id}/cancel", task["id"], 202)
    await do("PATCH", "/v1/agents/agent-missing", "/v1/agents/{agent_id}", "agent-missing", 404, json={})
    await do("DELETE", f"/v1/agents/{agent_id}", "/v1/agents/{agent_id}", agent_id, 204)
    # Not audited: reads, and requests without a valid key.
    await stack.http.get("/v1/tasks", headers=h)
    await stack.http.post("/v1/agents", headers=auth("ains_" + "x" * 43), json=agent)

    entries = await _entries(stack, key_id=key_id)
    assert len(entries) == len(calls)
    for entry, (method, route, path, resource, status) in zip(reversed(entries), calls, strict=True):
        assert (entry["method"], entry["route"], entry["path"], entry["status_code"]) == (method, route, path, status)
        assert entry["resource_id"] == resource, entry
        assert entry["client_id"] == client_id and entry["key_id"] == key_id
        assert entry["client_ip"] == "127.0.0.1" and entry["user_agent"] == "audit-test/1"
        assert re.fullmatch(r"[0-9a-f]{32}", entry["request_id"])
        assert started <= datetime.fromisoformat(entry["created_at"]) <= datetime.now(UTC)
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert new_key_secret not in str(entries)
    # The request id is the one the client saw.
    response = await stack.http.post(f"/v1/agents/{agent_id}/heartbeat", headers={**h, "X-Request-Id": "audit-req-1"})
    (entry,) = await _entries(stack, key_id=key_id, resource_id=agent_id, status_code=404)
    assert response.status_code == 404 and entry["request_id"] == "audit-req-1"


async def test_every_mutating_route_is_audited(stack: Stack) -> None:
    """Each POST/PUT/PATCH/DELETE route of the app leaves an entry, whatever its outcome."""
    key, _, key_id = await _admin(stack)
    paths = create_app(stack.settings).openapi()["paths"]
    routes = sorted(
        (method.upper(), template)
        for template, operations in paths.items()
        if template.startswith("/v1/")
        for method, operation in operations.items()
        if method.upper() in MUTATING and AGENT_SIGNATURE_AUTH not in operation  # key holders' requests only
    )
    # The filter found the key holders' mutating routes (and left the agents' signed callbacks out).
    assert {("POST", "/v1/tasks"), ("POST", "/v1/agents"), ("DELETE", "/v1/agents/{agent_id}")} <= set(routes)
    assert not any(template.startswith("/v1/agent-calls") for _, template in routes)
    for method, template in routes:
        path = re.sub(r"\{[^}]+\}", "audit-probe-missing", template)
        response = await stack.http.request(method, path, headers=auth(key), json={"audit_probe": True})
        assert response.status_code < 500, (method, path, response.text)
    audited = {(e["method"], e["route"]) for e in await _entries(stack, key_id=key_id)}
    assert audited == set(routes)


async def test_audit_is_admin_only_filtered_and_paginated(stack: Stack) -> None:
    key, client_id = await stack.new_key()
    assert (await stack.http.get("/v1/audit", headers=auth(key))).status_code == 403
    for _ in range(5):
        assert (await stack.http.post("/v1/agents/nobody/heartbeat", headers=auth(key))).status_code == 404
    assert (await stack.http.delete("/v1/agents/nobody", headers=auth(key))).status_code == 404
    admin = auth(stack.admin_key)
    page1 = (await stack.http.get("/v1/audit", headers=admin, params={"client_id": client_id, "limit": 4})).json()
    assert len(page1["items"]) == 4 and page1["next_cursor"]
    page2 = (
        await stack.http.get(
            "/v1/audit", headers=admin, params={"client_id": client_id, "limit": 4, "cursor": page1["next_cursor"]}
        )
    ).json()
    assert len(page2["items"]) == 2 and page2["next_cursor"] is None
    assert {e["id"] for e in page1["items"]}.isdisjoint(e["id"] for e in page2["items"])
    assert page1["items"][0]["method"] == "DELETE"  # newest first
    assert len(await _entries(stack, client_id=client_id, method="POST")) == 5
    assert len(await _entries(stack, client_id=client_id, route="/v1/agents/{agent_id}")) == 1
    future = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert await _entries(stack, client_id=client_id, since=future) == []
    assert len(await _entries(stack, client_id=client_id, until=future)) == 6
    bad = await stack.http.get("/v1/audit", headers=admin, params={"cursor": "not-a-cursor"})
    assert bad.status_code == 422
    bad_method = await stack.http.get("/v1/audit", headers=admin, params={"method": "GET"})
    assert bad_method.status_code == 422


async def test_entries_are_written_in_the_background_without_a_reader(stack: Stack) -> None:
    """The writer flushes on its own (off the request path); GET /v1/audit only forces an early flush."""
    key, client_id = await stack.new_key()
    for _ in range(3):
        assert (await stack.http.post("/v1/agents/ghost/heartbeat", headers=auth(key))).status_code == 404
    deadline = asyncio.get_running_loop().time() + 5
    count = 0
    while count < 3 and asyncio.get_running_loop().time() < deadline:
        async with stack.db.session() as session:
            count = (await session.execute(select(func.count()).where(AuditEntry.client_id == client_id))).scalar_one()
        await asyncio.sleep(0.05)
    assert count == 3
