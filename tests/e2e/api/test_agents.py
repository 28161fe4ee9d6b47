"""The agent registry over the API: register, list and filter, read, update, deregister."""

from __future__ import annotations

import uuid

from ains.models.keys import Scope
from tests.support.stack import Stack, auth


def _agent(agent_id: str, tags: list[tuple[str, str]], **extra: object) -> dict[str, object]:
    return {
        "id": agent_id,
        "display_name": f"Agent {agent_id}",
        "endpoint_url": "http://127.0.0.1:9/run",
        "capabilities": [{"tag": t, "version": v} for t, v in tags],
        **extra,
    }


async def test_register_read_update_deregister(stack: Stack) -> None:
    headers = auth(stack.admin_key)
    agent_id = f"crud-{uuid.uuid4().hex[:8]}"
    created = await stack.http.post(
        "/v1/agents", headers=headers, json=_agent(agent_id, [("summarize", "2.1")], max_concurrency=4)
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["trust_score"] == 0.5 and body["trust_tier"] == "average"
    assert body["status"] == "available" and body["max_concurrency"] == 4 and body["running_tasks"] == 0
    assert body["capabilities"] == [{"tag": "summarize", "version": "2.1"}]

    duplicate = await stack.http.post("/v1/agents", headers=headers, json=_agent(agent_id, [("x", "1")]))
    assert duplicate.status_code == 409

    read = await stack.http.get(f"/v1/agents/{agent_id}", headers=headers)
    assert read.status_code == 200 and read.json()["id"] == agent_id

    patched = await stack.http.patch(
        f"/v1/agents/{agent_id}",
        headers=headers,
        json={
            "display_name": "Renamed",
            "capabilities": [{"tag": "translate", "version": "1.0"}],
            "status": "unavailable",
        },
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["display_name"] == "Renamed"
    assert patched.json()["capabilities"] == [{"tag": "translate", "version": "1.0"}]
    assert patched.json()["status"] == "unavailable"

    deleted = await stack.http.delete(f"/v1/agents/{agent_id}", headers=headers)
    assert deleted.status_code == 204
    assert (await stack.http.get(f"/v1/agents/{agent_id}", headers=headers)).status_code == 404
    assert (await stack.http.delete(f"/v1/agents/{agent_id}", headers=headers)).status_code == 404
    assert (await stack.http.patch(f"/v1/agents/{agent_id}", headers=headers, json={})).status_code == 404


async def test_list_filters_by_every_tag_and_paginates(stack: Stack) -> None:
    headers = auth(stack.admin_key)
    tag_a, tag_b = f"a{uuid.uuid4().hex[:8]}", f"b{uuid.uuid4().hex[:8]}"
    prefix = uuid.uuid4().hex[:6]
    for i in range(5):
        tags = [(tag_a, "1.0")] + ([(tag_b, "1.0")] if i % 2 == 0 else [])
        response = await stack.http.post("/v1/agents", headers=headers, json=_agent(f"{prefix}-{i}", tags))
        assert response.status_code == 201

    only_a = (await stack.http.get("/v1/agents", headers=headers, params={"tag": tag_a})).json()
    assert [a["id"] for a in only_a["items"]] == [f"{prefix}-{i}" for i in range(5)]
    both = (await stack.http.get("/v1/agents", headers=headers, params=[("tag", tag_a), ("tag", tag_b)])).json()
    assert [a["id"] for a in both["items"]] == [f"{prefix}-0", f"{prefix}-2", f"{prefix}-4"]

    pages: list[str] = []
    cursor = None
    while True:
        params = {"tag": tag_a, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await stack.http.get("/v1/agents", headers=headers, params=params)).json()
        pages += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == [f"{prefix}-{i}" for i in range(5)]

    bad = await stack.http.get("/v1/agents", headers=headers, params={"tag": "Not A Tag"})
    assert bad.status_code == 422


async def test_agent_validation_errors(stack: Stack) -> None:
    headers = auth(stack.admin_key)
    cases = [
        (_agent("ok-id", []), "capabilities"),
        (_agent("ok-id", [("dup", "1"), ("dup", "2")]), "repeated: dup"),
        (_agent("ok-id", [("x", "not a version")]), "invalid version"),
        (_agent("bad id!", [("x", "1")]), "id"),
        ({**_agent("ok-id", [("x", "1")]), "endpoint_url": "ftp://example"}, "endpoint_url"),
        (_agent("ok-id", [("x", "1")], max_concurrency=0), "max_concurrency"),
    ]
    for body, fragment in cases:
        response = await stack.http.post("/v1/agents", headers=headers, json=body)
        assert response.status_code == 422, (body, response.text)
        assert fragment in response.json()["error"]["message"], response.text


async def test_agents_read_scope_cannot_register(stack: Stack) -> None:
    key, _ = await stack.new_key(scopes=[Scope.TASKS_READ, Scope.TASKS_WRITE, Scope.AGENTS_READ])
    response = await stack.http.post("/v1/agents", headers=auth(key), json=_agent("nope", [("x", "1")]))
    assert response.status_code == 403
