"""Events and signed webhooks end to end: real tasks, real delivery workflows, real receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from ains.core.platform.temporal import connect
from ains.core.webhooks.events import dispatch_pending, emit_tier_change
from ains.core.webhooks.verify import verify_webhook
from tests.support.receivers import webhook_receiver
from tests.support.stack import CALLBACK_SECRET, Stack, auth


async def _subscribe(stack: Stack, key: str, url: str, events: list[str], **extra: Any) -> dict[str, Any]:
    response = await stack.http.post(
        "/v1/webhooks", headers=auth(key), json={"url": url, "event_types": events, **extra}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["secret"].startswith("whsec_")
    return body


async def _delivery(stack: Stack, key: str, webhook_id: str, status: str, timeout: float = 20.0) -> dict[str, Any]:
    """The webhook's (single) delivery once it reached ``status``, with its attempt log."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        page = await stack.http.get("/v1/webhooks/deliveries", headers=auth(key), params={"webhook_id": webhook_id})
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        last = items
        if items and items[0]["status"] == status:
            detail = await stack.http.get(f"/v1/webhooks/deliveries/{items[0]['id']}", headers=auth(key))
            assert detail.status_code == 200
            result: dict[str, Any] = detail.json()
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {status} delivery for {webhook_id} within {timeout}s; last: {last}")


async def test_receiver_down_at_first_gets_exactly_one_signed_delivery(stack: Stack) -> None:
    key, _ = await stack.new_key()
    _, tag = await stack.register_agent()
    async with webhook_receiver(fail_first=2) as receiver:
        hook = await _subscribe(
            stack, key, receiver.url, ["task.succeeded", "task.failed"], filter={"task_types": ["echo"]}
        )
        ignored = await stack.submit(key, type="uppercase", input={"text": "x"}, required_capabilities=[tag])
        task = await stack.submit(key, input={"n": 1}, required_capabilities=[tag])
        await stack.wait_for(key, task["id"], {"succeeded"})
        await stack.wait_for(key, ignored["id"], {"succeeded"})

        delivery = await _delivery(stack, key, hook["id"], "succeeded")
        assert delivery["attempts"] == 3 and delivery["event_type"] == "task.succeeded"
        assert [a["status_code"] for a in delivery["attempt_log"]] == [503, 503, 200]
        assert all(a["latency_ms"] > 0 for a in delivery["attempt_log"])
        assert "503" in (delivery["attempt_log"][0]["error"] or "")

        (ok,) = receiver.succeeded()
        assert len(receiver.requests) == 3  # the filter kept the uppercase task's event away
        verify_webhook(hook["secret"], ok.body, ok.headers)
        assert ok.headers["x-ains-delivery-attempt"] == "3"
        assert ok.headers["x-ains-event-id"] == ok.event["id"] == delivery["event_id"]
        assert {r.headers["x-ains-event-id"] for r in receiver.requests} == {ok.event["id"]}
        assert ok.event["type"] == "task.succeeded"
        assert ok.event["data"]["task_id"] == task["id"] and ok.event["data"]["result"] == {"output": {"n": 1}}
        await asyncio.sleep(0.5)
        assert len(receiver.succeeded()) == 1


async def test_receiver_that_never_succeeds_is_dead_lettered_and_replayed(stack: Stack) -> None:
    key, _ = await stack.new_key()
    _, tag = await stack.register_agent(path="/fail")
    async with webhook_receiver(always_fail=True) as receiver:
        hook = await _subscribe(stack, key, receiver.url, ["task.failed"])
        task = await stack.submit(key, required_capabilities=[tag], max_attempts=1)
        await stack.wait_for(key, task["id"], {"failed"})

        dead = await _delivery(stack, key, hook["id"], "dead")
        tries = len(dead["attempt_log"])
        assert tries >= 3 and dead["attempts"] == tries
        assert all(a["status_code"] == 503 for a in dead["attempt_log"])
        assert "gave up" in dead["last_error"]
        listed = await stack.http.get("/v1/webhooks/deliveries", headers=auth(key), params={"status": "dead"})
        assert [d["id"] for d in listed.json()["items"]] == [dead["id"]]
        assert len(receiver.requests) == tries

        receiver.always_fail = False
        replay = await stack.http.post(f"/v1/webhooks/deliveries/{dead['id']}/replay", headers=auth(key))
        assert replay.status_code == 202, replay.text
        assert replay.json()["replays"] == 1
        again = await stack.http.post(f"/v1/webhooks/deliveries/{dead['id']}/replay", headers=auth(key))
        assert again.status_code == 409  # only dead deliveries can be replayed

        delivered = await _delivery(stack, key, hook["id"], "succeeded")
        assert delivered["attempt_log"][-1]["status_code"] == 200
        assert delivered["attempt_log"][-1]["attempt"] == tries + 1
        (ok,) = receiver.succeeded()
        verify_webhook(hook["secret"], ok.body, ok.headers)
        assert ok.event["data"]["task_id"] == task["id"] and ok.event["type"] == "task.failed"
        none_dead = await stack.http.get("/v1/webhooks/deliveries", headers=auth(key), params={"status": "dead"})
        assert none_dead.json()["items"] == []


async def test_task_callback_url_receives_its_final_event(stack: Stack) -> None:
    key, _ = await stack.new_key()
    _, tag = await stack.register_agent()
    async with webhook_receiver() as receiver:
        task = await stack.submit(key, required_capabilities=[tag], callback_url=receiver.url)
        assert (await stack.wait_for(key, task["id"]))["callback_url"] == receiver.url
        (ok,) = await receiver.wait_for(1)
        verify_webhook(CALLBACK_SECRET, ok.body, ok.headers)
        assert ok.event["type"] == "task.succeeded" and ok.event["data"]["task_id"] == task["id"]


async def test_trust_tier_change_is_delivered(stack: Stack) -> None:
    key, _ = await stack.new_key()
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    async with webhook_receiver() as receiver:
        hook = await _subscribe(stack, key, receiver.url, ["trust.tier_changed"], filter={"agent_ids": [agent]})
        async with stack.db.transaction() as session:
            assert await emit_tier_change(session, agent, 0.5, 0.52) == []  # same tier: no event
            assert len(await emit_tier_change(session, agent, 0.69, 0.71, reason="test")) == 1
        await dispatch_pending(stack.db, await connect(stack.settings), stack.settings)
        (ok,) = await receiver.wait_for(1)
        verify_webhook(hook["secret"], ok.body, ok.headers)
        assert ok.event["type"] == "trust.tier_changed"
        assert ok.event["data"]["tier_before"] == "average" and ok.event["data"]["tier_after"] == "good"


async def test_webhooks_are_private_to_their_client(stack: Stack) -> None:
    key, _ = await stack.new_key()
    other, _ = await stack.new_key()
    hook = await _subscribe(stack, key, "http://127.0.0.1:9/hook", ["task.succeeded"])
    assert (await stack.http.get(f"/v1/webhooks/{hook['id']}", headers=auth(other))).status_code == 404
    assert (await stack.http.delete(f"/v1/webhooks/{hook['id']}", headers=auth(other))).status_code == 404
    assert (await stack.http.get("/v1/webhooks", headers=auth(other))).json()["items"] == []
    mine = await stack.http.get(f"/v1/webhooks/{hook['id']}", headers=auth(key))
    assert mine.status_code == 200 and "secret" not in mine.json()
    assert [h["id"] for h in (await stack.http.get("/v1/webhooks", headers=auth(key))).json()["items"]] == [hook["id"]]
    missing = await stack.http.post("/v1/webhooks/deliveries/dlv_nope/replay", headers=auth(key))
    assert missing.status_code == 404
    assert (await stack.http.delete(f"/v1/webhooks/{hook['id']}", headers=auth(key))).status_code == 204
    assert (await stack.http.get(f"/v1/webhooks/{hook['id']}", headers=auth(key))).status_code == 404


async def test_unsafe_and_invalid_urls_are_refused(stack: Stack) -> None:
    key, _ = await stack.new_key()
    for url in ("http://169.254.169.254/latest/meta-data", "http://metadata.google.internal/", "http://10.1.2.3/h"):
        response = await stack.http.post(
            "/v1/webhooks", headers=auth(key), json={"url": url, "event_types": ["task.failed"]}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "unsafe_url"
    bad_type = await stack.http.post(
        "/v1/webhooks", headers=auth(key), json={"url": "http://127.0.0.1:9/", "event_types": ["task.exploded"]}
    )
    assert bad_type.status_code == 422
    callback = await stack.http.post(
        "/v1/tasks", headers=auth(key), json={"type": "echo", "callback_url": "http://[fe80::1]/x"}
    )
    assert callback.status_code == 422 and "link-local" in callback.json()["error"]["message"]
    agent = await stack.http.post(
        "/v1/agents",
        headers=auth(stack.admin_key),
        json={
            "id": f"meta-{uuid.uuid4().hex[:6]}",
            "display_name": "metadata thief",
            "endpoint_url": "http://169.254.169.254/run",
            "capabilities": [{"tag": "echo"}],
        },
    )
    assert agent.status_code == 422 and "metadata" in agent.json()["error"]["message"]
