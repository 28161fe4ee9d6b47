"""What users rely on from the fast registry reads: read-your-writes on the same API server (the list and the
leaderboard are cached for a moment; writes through the server clear that cache), the list and the
single-agent view agreeing field for field (live load included), the leaderboard following trust changes,
and API keys that stop working promptly once revoked (the API caches verified keys)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from sqlalchemy import update

from ains.core.agents.registry import AGENTS
from ains.models.tables import ApiKey, TaskAttempt, utcnow
from tests.support.factories import task_row
from tests.support.stack import Stack, auth


def _agent(agent_id: str, tags: list[str], **extra: object) -> dict[str, object]:
    return {
        "id": agent_id,
        "display_name": f"Agent {agent_id}",
        "endpoint_url": "http://127.0.0.1:9/run",
        "capabilities": [{"tag": t, "version": "1.0"} for t in tags],
        **extra,
    }


async def _listed(stack: Stack, tag: str, fresh: bool = False, **params: Any) -> list[dict[str, Any]]:
    """The list for ``tag``: as served (possibly from the API's short-lived cache), or ``fresh`` from the
    registry (``Cache-Control: no-cache``) for changes made around the API, like a worker's."""
    headers = {**auth(stack.admin_key), **({"Cache-Control": "no-cache"} if fresh else {})}
    response = await stack.http.get("/v1/agents", headers=headers, params={"tag": tag, **params})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_list_shows_registrations_updates_and_removals_at_once(stack: Stack) -> None:
    headers = auth(stack.admin_key)
    tag = f"ryw{uuid.uuid4().hex[:8]}"
    agent_id = f"ryw-{uuid.uuid4().hex[:8]}"
    assert await _listed(stack, tag) == []

    created = await stack.http.post("/v1/agents", headers=headers, json=_agent(agent_id, [tag], max_concurrency=3))
    assert created.status_code == 201, created.text
    assert await _listed(stack, tag) == [created.json()], "the next read shows the registration, as registered"

    patched = await stack.http.patch(
        f"/v1/agents/{agent_id}",
        headers=headers,
        json={"display_name": "Renamed", "capabilities": [{"tag": tag, "version": "2.0"}], "status": "unavailable"},
    )
    assert patched.status_code == 200, patched.text
    assert await _listed(stack, tag) == [patched.json()]
    assert await _listed(stack, tag, status="unavailable") == [patched.json()]
    assert await _listed(stack, tag, status="available") == []

    heartbeat = await stack.http.post(f"/v1/agents/{agent_id}/heartbeat", headers=headers)
    assert heartbeat.status_code == 200
    assert (await _listed(stack, tag))[0]["last_heartbeat_at"] == heartbeat.json()["last_heartbeat_at"]

    assert (await stack.http.delete(f"/v1/agents/{agent_id}", headers=headers)).status_code == 204
    assert await _listed(stack, tag) == []


async def test_list_entry_equals_the_agent_view_including_live_load(stack: Stack) -> None:
    headers = auth(stack.admin_key)
    tag = f"eq{uuid.uuid4().hex[:8]}"
    ids = [f"eq-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    for agent_id in ids:
        response = await stack.http.post("/v1/agents", headers=headers, json=_agent(agent_id, [tag, f"{tag}-x"]))
        assert response.status_code == 201, response.text
    # Two running attempts on the first agent, a finished one on the second, of a task no workflow runs.
    task_id = f"tsk_{uuid.uuid4().hex[:12]}"
    async with stack.db.transaction() as session:
        session.add(task_row(task_id, [tag], client_id="admin", status="running"))
        await session.flush()
        session.add_all(
            [
                TaskAttempt(task_id=task_id, attempt=1, agent_id=ids[0], status="running"),
                TaskAttempt(task_id=task_id, attempt=2, agent_id=ids[0], status="running"),
                TaskAttempt(task_id=task_id, attempt=3, agent_id=ids[1], status="succeeded"),
            ]
        )
    # Attempts are written by workers, not through this API: live load is read fresh (without no-cache it
    # shows within AINS_REGISTRY_READ_CACHE_TTL_SECONDS; tests/e2e/api/test_registry_read_cache.py).
    listed = await _listed(stack, tag, fresh=True)
    assert [a["id"] for a in listed] == sorted(ids)
    by_id = {a["id"]: a for a in listed}
    assert by_id[ids[0]]["running_tasks"] == 2 and by_id[ids[1]]["running_tasks"] == 0
    for agent_id in ids:
        single = (await stack.http.get(f"/v1/agents/{agent_id}", headers=headers)).json()
        assert [t["tag"] for t in single.pop("learned")] == sorted([tag, f"{tag}-x"])  # GET by id only
        assert by_id[agent_id] == single
        assert [c["tag"] for c in by_id[agent_id]["capabilities"]] == [tag, f"{tag}-x"]

    page = (await stack.http.get("/v1/agents", headers=headers, params={"tag": tag, "limit": 2})).json()
    assert [a["id"] for a in page["items"]] == sorted(ids)[:2] and AGENTS.decode(page["next_cursor"]) == (
        sorted(ids)[1],
    )
    rest = await stack.http.get("/v1/agents", headers=headers, params={"tag": tag, "cursor": page["next_cursor"]})
    assert [a["id"] for a in rest.json()["items"]] == sorted(ids)[2:]


async def test_leaderboard_follows_a_trust_override_at_once(stack: Stack) -> None:
    headers = auth(stack.admin_key)
    tag = f"lb{uuid.uuid4().hex[:8]}"
    low, high = f"lb-{uuid.uuid4().hex[:8]}", f"lb-{uuid.uuid4().hex[:8]}"
    for agent_id in (low, high):
        assert (await stack.http.post("/v1/agents", headers=headers, json=_agent(agent_id, [tag]))).status_code == 201

    async def board(**params: Any) -> dict[str, Any]:
        response = await stack.http.get("/v1/trust/leaderboard", headers=headers, params={"tag": tag, **params})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    before = await board()
    assert before["tag"] == tag and before["tier"] is None
    assert [e["agent_id"] for e in before["entries"]] == sorted([low, high]), "equal trust: ties by id"

    override = await stack.http.post(
        f"/v1/agents/{high}/trust", headers=headers, json={"score": 0.95, "reason": "vetted by hand"}
    )
    assert override.status_code == 201, override.text
    after = await board()
    assert [(e["rank"], e["agent_id"]) for e in after["entries"]] == [(1, high), (2, low)]
    top = after["entries"][0]
    assert top["trust_score"] == 0.95 and top["trust_tier"] == "excellent" and top["tag_trust_score"] == 0.5
    excellent = await board(tier="excellent")
    assert excellent["tier"] == "excellent" and excellent["entries"] == []  # ranked by the tag's own trust
    overall = (
        await stack.http.get("/v1/trust/leaderboard", headers=headers, params={"tier": "excellent", "limit": 500})
    ).json()
    assert high in [e["agent_id"] for e in overall["entries"]]
    assert all(e["tag_trust_score"] is None for e in overall["entries"])


async def test_key_revoked_through_this_server_stops_working_at_once(stack: Stack) -> None:
    created = await stack.http.post(
        "/v1/keys", headers=auth(stack.admin_key), json={"client_id": f"c-{uuid.uuid4().hex[:6]}"}
    )
    key, key_id = created.json()["key"], created.json()["id"]
    for _ in range(3):  # verified once, then served from the API's key cache
        assert (await stack.http.get("/v1/tasks", headers=auth(key))).status_code == 200
    assert (await stack.http.delete(f"/v1/keys/{key_id}", headers=auth(stack.admin_key))).status_code == 200
    assert (await stack.http.get("/v1/tasks", headers=auth(key))).status_code == 401


async def test_key_revoked_elsewhere_stops_working_within_the_cache_ttl(stack: Stack) -> None:
    """Another API replica revoking the key writes the same row; this server notices within the TTL."""
    key, client_id = await stack.new_key()
    assert (await stack.http.get("/v1/agents", headers=auth(key))).status_code == 200
    async with stack.db.transaction() as session:
        await session.execute(update(ApiKey).where(ApiKey.client_id == client_id).values(revoked_at=utcnow()))
    revoked_at = time.monotonic()
    deadline = revoked_at + stack.settings.api_key_cache_ttl_seconds + 2.0
    while (status := (await stack.http.get("/v1/agents", headers=auth(key))).status_code) == 200:
        assert time.monotonic() < deadline, "a key revoked elsewhere must stop working within the cache TTL"
        await asyncio.sleep(0.2)
    assert status == 401
