"""API keys: 401/403, cross-client isolation, expiry, revocation, hashing at rest."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from ains.models.keys import Scope
from ains.models.tables import ApiKey
from tests.support.stack import Stack, auth


async def test_missing_or_unknown_key_is_401(stack: Stack) -> None:
    missing = await stack.http.get("/v1/tasks")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert "missing API key" in missing.json()["error"]["message"]
    unknown = await stack.http.get("/v1/tasks", headers=auth("ains_" + "x" * 43))
    assert unknown.status_code == 401
    not_ours = await stack.http.get("/v1/tasks", headers=auth("sk-something-else"))
    assert not_ours.status_code == 401


async def test_x_api_key_header_works_too(stack: Stack) -> None:
    key, _ = await stack.new_key()
    response = await stack.http.get("/v1/tasks", headers={"X-API-Key": key})
    assert response.status_code == 200


async def test_wrong_scope_is_403(stack: Stack) -> None:
    reader, _ = await stack.new_key(scopes=[Scope.TASKS_READ])
    response = await stack.http.post("/v1/tasks", headers=auth(reader), json={"type": "echo"})
    assert response.status_code == 403
    assert "tasks:write" in response.json()["error"]["message"]
    agents = await stack.http.get("/v1/agents", headers=auth(reader))
    assert agents.status_code == 403
    keys = await stack.http.post("/v1/keys", headers=auth(reader), json={"client_id": "x"})
    assert keys.status_code == 403


async def test_a_client_never_sees_another_clients_tasks(stack: Stack) -> None:
    _, tag = await stack.register_agent("/run")
    alice, _ = await stack.new_key()
    bob, _ = await stack.new_key()
    task = await stack.submit(alice, required_capabilities=[tag])
    assert (await stack.http.get(f"/v1/tasks/{task['id']}", headers=auth(bob))).status_code == 404
    assert (await stack.http.post(f"/v1/tasks/{task['id']}/cancel", headers=auth(bob))).status_code == 404
    bobs_list = (await stack.http.get("/v1/tasks", headers=auth(bob))).json()
    assert task["id"] not in [t["id"] for t in bobs_list["items"]]
    # The same idempotency key from two clients makes two different tasks.
    body = {"type": "echo", "required_capabilities": [tag], "idempotency_key": "shared"}
    a = (await stack.http.post("/v1/tasks", headers=auth(alice), json=body)).json()
    b = (await stack.http.post("/v1/tasks", headers=auth(bob), json=body)).json()
    assert a["id"] != b["id"]
    # Admins see everything.
    assert (await stack.http.get(f"/v1/tasks/{task['id']}", headers=auth(stack.admin_key))).status_code == 200


async def test_key_lifecycle_create_list_revoke(stack: Stack) -> None:
    created = await stack.http.post(
        "/v1/keys",
        headers=auth(stack.admin_key),
        json={"client_id": "acme", "name": "ci", "scopes": ["tasks:read"], "rate_limit_per_minute": 100},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    key = body["key"]
    assert key.startswith("ains_") and len(key) >= 5 + 43  # 256 bits, url-safe base64
    assert body["prefix"] == key[:12]
    assert (await stack.http.get("/v1/tasks", headers=auth(key))).status_code == 200

    listed = (await stack.http.get("/v1/keys", headers=auth(stack.admin_key), params={"client_id": "acme"})).json()
    assert body["id"] in [k["id"] for k in listed]
    assert all("key" not in k for k in listed), "the secret is never shown again"

    revoked = await stack.http.delete(f"/v1/keys/{body['id']}", headers=auth(stack.admin_key))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert (await stack.http.get("/v1/tasks", headers=auth(key))).status_code == 401
    assert (await stack.http.delete("/v1/keys/nope", headers=auth(stack.admin_key))).status_code == 404


async def test_keys_are_stored_only_as_sha256_hashes(stack: Stack) -> None:
    key, client_id = await stack.new_key()
    async with stack.db.session() as session:
        rows = (await session.execute(select(ApiKey).where(ApiKey.client_id == client_id))).scalars().all()
    [row] = rows
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    stored = " ".join(str(getattr(row, column.key)) for column in ApiKey.__table__.columns)
    assert key not in stored
    assert key[12:] not in stored, "nothing beyond the display prefix is kept"


async def test_expired_key_is_401(stack: Stack) -> None:
    key, _ = await stack.new_key(expires_at=datetime.now(UTC) + timedelta(seconds=1))
    assert (await stack.http.get("/v1/tasks", headers=auth(key))).status_code == 200
    await asyncio.sleep(1.2)
    response = await stack.http.get("/v1/tasks", headers=auth(key))
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


async def test_creating_an_already_expired_key_is_rejected(stack: Stack) -> None:
    response = await stack.http.post(
        "/v1/keys",
        headers=auth(stack.admin_key),
        json={"client_id": "acme", "expires_at": "2000-01-01T00:00:00Z"},
    )
    assert response.status_code == 422
    assert "future" in response.json()["error"]["message"]


async def test_rate_limit_per_key_answers_429_with_retry_after(stack: Stack) -> None:
    key, _ = await stack.new_key(rate_limit_per_minute=3)
    statuses = [(await stack.http.get("/v1/tasks", headers=auth(key))).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = await stack.http.get("/v1/tasks", headers=auth(key))
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limited"
    other, _ = await stack.new_key(rate_limit_per_minute=3)
    assert (await stack.http.get("/v1/tasks", headers=auth(other))).status_code == 200, "limits are per key"
