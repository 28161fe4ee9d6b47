"""The per-process response cache of GET /v1/agents and GET /v1/trust/leaderboard (api.read_cache).

End to end: writes through the API show in the next read; changes made elsewhere (a worker, another replica:
here a direct update of the registry row) show once the TTL has passed, or at once with
``Cache-Control: no-cache``; authentication, scopes and the rate limit still run on every cached request; TTL 0
turns the cache off. Then the cache itself: one read for concurrent misses, no stale stores after a write,
bounded size. No assertion depends on timing: where a body must still be cached, the TTL is set to a minute.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import update

from ains.models.keys import Scope
from ains.models.tables import Agent
from tests.support.stack import Stack, auth

NO_CACHE = {"Cache-Control": "no-cache"}
LONG_TTL = 60.0


def _agent(agent_id: str, tag: str) -> dict[str, object]:
    return {
        "id": agent_id,
        "display_name": f"Agent {agent_id}",
        "endpoint_url": "http://127.0.0.1:9/run",
        "capabilities": [{"tag": tag, "version": "1.0"}],
    }


async def _get(stack: Stack, path: str, key: str | None = None, **params: Any) -> Any:
    headers = auth(key or stack.admin_key)
    headers.update(params.pop("headers", {}))
    response = await stack.http.get(path, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response


async def _register(stack: Stack, tag: str) -> str:
    agent_id = f"rc-{uuid.uuid4().hex[:8]}"
    response = await stack.http.post("/v1/agents", headers=auth(stack.admin_key), json=_agent(agent_id, tag))
    assert response.status_code == 201, response.text
    return agent_id


async def _set_row(stack: Stack, agent_id: str, **values: Any) -> None:
    """What a worker or another API replica does: write the registry row, bypassing this API process."""
    async with stack.db.transaction() as session:
        await session.execute(update(Agent).where(Agent.id == agent_id).values(**values))


async def test_cached_reads_say_so_and_equivalent_queries_share_an_entry(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack.settings, "registry_read_cache_ttl_seconds", LONG_TTL)
    tag, other = f"rch{uuid.uuid4().hex[:8]}", f"rch{uuid.uuid4().hex[:8]}"
    agent_id = await _register(stack, tag)
    headers = {**auth(stack.admin_key)}
    params = [("tag", tag), ("tag", tag), ("limit", "5")]
    first = await stack.http.get("/v1/agents", headers=headers, params=params)
    assert first.status_code == 200 and [a["id"] for a in first.json()["items"]] == [agent_id]
    assert first.headers["cache-control"] == "private, max-age=60" and "age" not in first.headers
    assert first.headers["x-content-type-options"] == "nosniff"  # the other security headers stay
    again = await stack.http.get("/v1/agents", headers=headers, params=[("limit", "5"), ("tag", tag)])
    assert again.content == first.content and int(again.headers["age"]) >= 0
    # The order of tags does not change the page: one entry (both empty, cached the second time).
    assert (await _get(stack, "/v1/agents", tag=[tag, other])).json()["items"] == []
    assert "age" in (await stack.http.get("/v1/agents", headers=headers, params=[("tag", other), ("tag", tag)])).headers
    fresh = await _get(stack, "/v1/agents", tag=tag, limit=5, headers=NO_CACHE)
    assert "age" not in fresh.headers and fresh.content == first.content

    board = await _get(stack, "/v1/trust/leaderboard", tag=tag)
    assert board.headers["cache-control"] == "private, max-age=60" and "age" not in board.headers
    assert "age" in (await _get(stack, "/v1/trust/leaderboard", tag=tag, limit=20)).headers
    # Errors are never cached.
    for _ in range(2):
        bad = await stack.http.get("/v1/agents", headers=headers, params={"tag": "Not A Tag"})
        assert bad.status_code == 422


async def test_writes_through_the_api_show_in_the_next_list_and_leaderboard(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack.settings, "registry_read_cache_ttl_seconds", LONG_TTL)
    headers = auth(stack.admin_key)
    tag = f"rcw{uuid.uuid4().hex[:8]}"

    async def listed() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await _get(stack, "/v1/agents", tag=tag)).json()["items"]
        return items

    async def board() -> list[tuple[str, float]]:
        entries = (await _get(stack, "/v1/trust/leaderboard", tag=tag)).json()["entries"]
        return [(e["agent_id"], e["trust_score"]) for e in entries]

    assert await listed() == [] and await board() == []  # both cached now
    first = await _register(stack, tag)
    assert [a["id"] for a in await listed()] == [first]
    assert await board() == [(first, 0.5)]

    second = await _register(stack, tag)
    assert [a["id"] for a in await listed()] == sorted([first, second])
    assert [agent_id for agent_id, _ in await board()] == sorted([first, second])

    patched = await stack.http.patch(f"/v1/agents/{second}", headers=headers, json={"display_name": "Renamed"})
    assert patched.status_code == 200
    assert {a["id"]: a["display_name"] for a in await listed()}[second] == "Renamed"

    override = await stack.http.post(
        f"/v1/agents/{second}/trust", headers=headers, json={"score": 0.9, "reason": "vetted by hand"}
    )
    assert override.status_code == 201, override.text
    assert (await board())[0] == (second, 0.9)
    assert {a["id"]: a["trust_score"] for a in await listed()}[second] == 0.9

    await _set_row(stack, first, status="unavailable", health_error="no answer")  # the health check
    fresh = (await _get(stack, "/v1/agents", tag=tag, headers=NO_CACHE)).json()["items"]
    assert {a["id"]: a["status"] for a in fresh}[first] == "unavailable"  # and cached so
    beat = await stack.http.post(f"/v1/agents/{first}/heartbeat", headers=headers)
    assert beat.status_code == 200 and beat.json()["status"] == "available"
    assert {a["id"]: a["status"] for a in await listed()}[first] == "available"

    assert (await stack.http.delete(f"/v1/agents/{second}", headers=headers)).status_code == 204
    assert [a["id"] for a in await listed()] == [first]
    assert [agent_id for agent_id, _ in await board()] == [first]


async def test_changes_made_elsewhere_show_after_the_ttl_or_at_once_with_no_cache(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stack.settings, "registry_read_cache_ttl_seconds", LONG_TTL)
    tag = f"rce{uuid.uuid4().hex[:8]}"
    agent_id = await _register(stack, tag)

    async def name(**params: Any) -> str:
        items = (await _get(stack, "/v1/agents", tag=tag, **params)).json()["items"]
        display_name: str = items[0]["display_name"]
        return display_name

    async def score(**params: Any) -> float:
        entries = (await _get(stack, "/v1/trust/leaderboard", tag=tag, **params)).json()["entries"]
        trust_score: float = entries[0]["trust_score"]
        return trust_score

    assert await name() == f"Agent {agent_id}" and await score() == 0.5
    await _set_row(stack, agent_id, display_name="Changed by a worker", trust_score=0.7)
    assert await name() == f"Agent {agent_id}" and await score() == 0.5, "within the TTL: the cached body"
    assert await name(headers=NO_CACHE) == "Changed by a worker"
    assert await score(headers={"Cache-Control": "max-age=0"}) == 0.7
    assert await name() == "Changed by a worker" and await score() == 0.7, "no-cache refreshed the entry"

    await _set_row(stack, agent_id, display_name="Changed again", trust_score=0.3)
    assert await name() == "Changed by a worker" and await score() == 0.7
    monkeypatch.setattr(stack.settings, "registry_read_cache_ttl_seconds", 0.2)
    await asyncio.sleep(0.3)
    assert await name() == "Changed again" and await score() == 0.3, "after the TTL: read again"


async def test_list_follows_live_load_within_the_ttl(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """``running_tasks`` is live load: no write through the API clears the cache for it, the TTL does."""
    monkeypatch.setattr(stack.settings, "registry_read_cache_ttl_seconds", 0.2)
    agent_id, tag = await stack.register_agent("/run", max_concurrency=2)
    key, _ = await stack.new_key()
    assert (await _get(stack, "/v1/agents", tag=tag)).json()["items"][0]["running_tasks"] == 0
    task = await stack.submit(key, type="echo", input={"delay_seconds": 3}, required_capabilities=[tag])
    await stack.wait_for(key, task["id"], {"running"})
    await asyncio.sleep(0.3)
    assert (await _get(stack, "/v1/agents", tag=tag)).json()["items"][0]["running_tasks"] == 1
    single = (await stack.http.get(f"/v1/agents/{agent_id}", headers=auth(stack.admin_key))).json()
    assert single["running_tasks"] == 1
    await stack.wait_for(key, task["id"])


async def test_auth_scopes_and_rate_limit_apply_to_cached_reads(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.settings, "registry_read_cache_ttl_seconds", LONG_TTL)
    paths = ["/v1/agents", "/v1/trust/leaderboard"]
    for path in paths:  # warm: both bodies cached
        await _get(stack, path)
        assert "age" in (await _get(stack, path)).headers

    for path in paths:
        assert (await stack.http.get(path)).status_code == 401
        assert (await stack.http.get(path, headers=auth("ains_" + "x" * 43))).status_code == 401
        assert (await stack.http.get(path, headers={**auth("ains_" + "x" * 43), **NO_CACHE})).status_code == 401
    no_scope, _ = await stack.new_key(scopes=[Scope.TASKS_READ])
    for path in paths:
        denied = await stack.http.get(path, headers=auth(no_scope))
        assert denied.status_code == 403 and "agents:read" in denied.json()["error"]["message"]

    created = await stack.http.post(
        "/v1/keys",
        headers=auth(stack.admin_key),
        json={"client_id": f"rc-{uuid.uuid4().hex[:6]}", "scopes": ["agents:read"]},
    )
    reader, reader_id = created.json()["key"], created.json()["id"]
    for path in paths:
        assert "age" in (await _get(stack, path, key=reader)).headers
    assert (await stack.http.delete(f"/v1/keys/{reader_id}", headers=auth(stack.admin_key))).status_code == 200
    for path in paths:
        assert (await stack.http.get(path, headers=auth(reader))).status_code == 401

    limited, _ = await stack.new_key(scopes=[Scope.AGENTS_READ], rate_limit_per_minute=2)
    statuses = [(await stack.http.get("/v1/agents", headers=auth(limited))).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


async def test_ttl_zero_turns_the_cache_off(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stack.settings, "registry_read_cache_ttl_seconds", 0.0)
    tag = f"rcz{uuid.uuid4().hex[:8]}"
    agent_id = await _register(stack, tag)
    for path in ("/v1/agents", "/v1/trust/leaderboard"):
        for _ in range(2):
            response = await _get(stack, path, tag=tag)
            assert response.headers["cache-control"] == "no-store" and "age" not in response.headers
    await _set_row(stack, agent_id, display_name="Seen at once", trust_score=0.8)
    assert (await _get(stack, "/v1/agents", tag=tag)).json()["items"][0]["display_name"] == "Seen at once"
    assert (await _get(stack, "/v1/trust/leaderboard", tag=tag)).json()["entries"][0]["trust_score"] == 0.8


# --- the cache itself ------------------------------------------------------------------------------------------
