"""Temporal unreachable after the API connected (through a TCP proxy we cut; the dev server is untouched).

A task submitted meanwhile is accepted at once (its row is committed; the answer does not wait for Temporal) and
runs, once, as soon as Temporal is back: the background start's retries or the dispatch reconciler start it.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from ains.api.app import create_app
from tests.e2e.faults.faultkit import TcpProxy
from tests.support.servers import serve
from tests.support.stack import Stack, auth

OUTAGE_SECONDS = 2.0


async def test_tasks_submitted_while_temporal_is_unreachable_are_accepted_and_run_once_it_is_back(
    stack: Stack,
) -> None:
    host, port = stack.settings.temporal_address.rsplit(":", 1)
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    settings = stack.settings.model_copy(update={"temporal_address": f"127.0.0.1:{proxy.port}"})
    _, tag = await stack.register_agent("/run", max_concurrency=10)
    key, _ = await stack.new_key()
    api = await serve(create_app(settings))
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:

            async def submit(i: int) -> httpx.Response:
                body = {"type": "echo", "input": {"i": i}, "required_capabilities": [tag]}
                return await http.post("/v1/tasks", headers=auth(key), json=body)

            before = await submit(0)  # the API's Temporal client connects through the proxy
            assert before.status_code == 202, before.text
            await proxy.cut()
            t0 = time.monotonic()
            during = [await submit(i) for i in range(1, 4)]
            answered_in = time.monotonic() - t0
            assert [r.status_code for r in during] == [202] * 3, [r.text for r in during]
            assert answered_in < OUTAGE_SECONDS, f"the answers waited for Temporal ({answered_in:.1f} s)"
            ids = [r.json()["id"] for r in (before, *during)]
            for task_id in ids[1:]:
                view = (await http.get(f"/v1/tasks/{task_id}", headers=auth(key))).json()
                assert view["status"] == "pending", view
            await asyncio.sleep(OUTAGE_SECONDS - answered_in)
            await proxy.restore()
            for i, task_id in enumerate(ids):
                done = await stack.wait_for(key, task_id, timeout=60)
                assert done["status"] == "succeeded" and done["result"] == {"output": {"i": i}}, done
                assert done["attempts"] == 1, done
    finally:
        await api.stop()
        await proxy.cut()
